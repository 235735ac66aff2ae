//! One simulated user: connect, subscribe as a phone would, then chat when told to.

use super::report::Stats;
use super::wire::Wire;
use super::{Phase, Plan, Scenario};
use anyhow::Result;
use rand::Rng;
use roost_proto::topic;
use rumqttc::mqttbytes::v4::Packet;
use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Semaphore};

/// Presence payloads a user publishes itself in `--plain` mode (a roost node publishes
/// them for signed-in users).
const ONLINE: &[u8] = br#"{"status":"online"}"#;
const OFFLINE: &[u8] = br#"{"status":"offline"}"#;

pub async fn run(
    i: u32,
    plan: &Plan,
    stats: &Stats,
    mut phase: watch::Receiver<Phase>,
    gate: Arc<Semaphore>,
) -> Result<()> {
    let args = &plan.args;
    let users = args.total_users();
    let me = format!("{}{i}", args.prefix);
    let group = (args.scenario == Scenario::Group).then(|| plan.group_of(i));
    let token = match (&plan.password, &plan.secret) {
        (Some(password), _) => Some(password.clone()),
        (None, Some(secret)) => Some(crate::identity::mint(
            secret,
            &me,
            &group.iter().cloned().collect::<Vec<_>>(),
            "user",
            Duration::from_secs(24 * 3600),
        )?),
        (None, None) => None,
    };
    let source = (!plan.sources.is_empty()).then(|| plan.sources[i as usize % plan.sources.len()]);
    let presence_topic = topic::presence(&me);
    let mut filters = vec![topic::dm(&me, "+"), topic::dm("+", &me), topic::sys(&me)];
    for _ in 0..args.presence {
        let friend = rand::thread_rng().gen_range(0..users);
        filters.push(topic::presence(&format!("{}{friend}", args.prefix)));
    }
    if let Some(g) = &group {
        filters.push(topic::group(g, "+"));
    }
    let plain = plan.is_plain();

    let mut wire = {
        let _permit = gate.acquire().await?;
        let login = token.as_deref().map(|t| (me.as_str(), t));
        let will = plain.then_some((presence_topic.as_str(), OFFLINE));
        let asked = std::time::Instant::now();
        let mut wire = Wire::connect(plan.broker_of(i), source, &me, login, 60, will).await?;
        if args.scenario == Scenario::Connections {
            // The latency histogram is otherwise unused in this scenario (nothing is sent).
            stats.latency.record(asked.elapsed().as_micros() as u64);
        }
        wire.subscribe(&filters).await?;
        if plain {
            wire.publish_retained(&presence_topic, ONLINE)?;
            wire.flush().await?;
        }
        wire
    };
    stats.connected.fetch_add(1, Ordering::Relaxed);

    let chatting = args.scenario != Scenario::Connections;
    let paced = !args.interval.is_zero();
    let mut seen = HashSet::new();
    let mut sent = 0u32;
    let mut inflight = 0u32;
    // Spread the first messages over one interval so users don't send in lockstep.
    let offset = args.interval.mul_f64(rand::thread_rng().gen::<f64>());
    let mut next_send = tokio::time::Instant::now() + offset;
    let mut keepalive = tokio::time::interval(Duration::from_secs(30));
    keepalive.tick().await;
    let mut sending = false;
    loop {
        let may_send = sending && chatting && sent < args.messages;
        if may_send && !paced {
            // As fast as the broker acknowledges, `--inflight` at a time.
            while inflight < args.inflight && sent < args.messages {
                publish(plan, i, &me, group.as_deref(), sent, &mut wire)?;
                stats.sent.fetch_add(1, Ordering::Relaxed);
                sent += 1;
                inflight += 1;
            }
            wire.flush().await?;
        }
        tokio::select! {
            changed = phase.changed() => {
                if changed.is_err() || *phase.borrow() == Phase::Stop {
                    return Ok(());
                }
                if *phase.borrow() == Phase::Send {
                    sending = true;
                    next_send = tokio::time::Instant::now() + offset;
                }
            }
            packet = wire.recv() => {
                let mut packet = Some(packet?);
                while let Some(p) = packet {
                    match p {
                        Packet::Publish(p) => {
                            wire.ack_delivery(&p);
                            stats.delivery(&me, &p.topic, &p.payload, plan.epoch, &mut seen, plan.args.ack);
                        }
                        Packet::PubAck(_) => {
                            stats.acked.fetch_add(1, Ordering::Relaxed);
                            inflight = inflight.saturating_sub(1);
                        }
                        _ => {}
                    }
                    packet = wire.try_decode()?;
                }
            }
            () = tokio::time::sleep_until(next_send), if may_send && paced => {
                publish(plan, i, &me, group.as_deref(), sent, &mut wire)?;
                stats.sent.fetch_add(1, Ordering::Relaxed);
                sent += 1;
                next_send += args.interval;
            }
            _ = keepalive.tick() => wire.ping(),
        }
        wire.flush().await?;
    }
}

/// Queues user `i`'s message number `seq`: a DM to a random other user, or to its group.
fn publish(
    plan: &Plan,
    i: u32,
    me: &str,
    group: Option<&str>,
    seq: u32,
    wire: &mut Wire,
) -> Result<()> {
    let topic = match group {
        Some(g) => topic::group(g, me),
        None => {
            let users = plan.args.total_users();
            let nodes = plan.brokers.len() as u32;
            let to = loop {
                let j = rand::thread_rng().gen_range(0..users);
                // --cross-node: only users on another node (j mod N is j's node).
                if j != i && !(plan.args.cross_node && j % nodes == i % nodes) {
                    break j;
                }
            };
            topic::dm(&format!("{}{to}", plan.args.prefix), me)
        }
    };
    let payload = format!(
        // The send time is in the id too, so the `ack` (which carries only the id) can be timed.
        r#"{{"id":"{i}-{seq}-{sent_us}","kind":"text","body":"{}","ts":{},"bench_us":{sent_us}}}"#,
        plan.body,
        crate::payload::now_ms(),
        sent_us = plan.epoch.elapsed().as_micros() as u64,
    );
    wire.publish(&topic, payload.into_bytes())?;
    Ok(())
}
