//! The web chat app (issue 13, web/) as people use it: served by a real `roost` process at
//! `/`, signed into with passwords from `roost user add --password-stdin`, and driven in a
//! real headless Chromium through chromedriver (Debian `chromium`, `chromium-driver`).
//! Every wait is on a condition in the page, polled until a deadline.
//!
//! Screenshots of the main views are written to `target/tmp/web-screenshots/`; with
//! `ROOST_UPDATE_SCREENSHOTS=1` also to docs/img/ (the README shows them).
mod common;

use common::http::call;
use common::tools::describe;
use common::webdriver::{Browser, Driver};
use common::{token, Node};
use serde_json::{json, Value};
use std::path::PathBuf;

const ALICE_PASSWORD: &str = "correct horse alice";
const BOB_PASSWORD: &str = "battery staple bob";
/// Messages already in the alice-bob DM before anyone opens it: more than one page of
/// history (the app asks 30 at a time), so scrolling up has something to load.
const SEEDED: usize = 40;

/// `roost ARGS --config NODE_CONFIG` with `stdin`; panics unless it succeeds.
fn roost(node: &Node, args: &[&str], stdin: &str) {
    let out = node.roost(args, stdin);
    assert!(out.status.success(), "roost {args:?}: {}", describe(&out));
}

async fn login(node: &Node, user: &str, password: &str) -> String {
    let body = json!({"user": user, "password": password}).to_string();
    let reply = call(
        node.http,
        "POST",
        "/api/v1/login",
        &[("content-type", "application/json")],
        body,
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()["token"].as_str().unwrap().to_owned()
}

/// A conversation's line in the list: `{unread, last, presence}`, or null.
const CONV_LINE: &str = "const li = document.querySelector(`[data-conv=\"${arguments[0]}\"]`);
    return li && {unread: Number(li.querySelector('.unread')?.textContent || 0),
                  last: li.querySelector('.last').textContent,
                  presence: li.querySelector('.dot')?.dataset.presence || null};";
/// The open chat's messages, an expression: `[{body, status, seq}]`.
const MESSAGES: &str = "[...document.querySelectorAll('#msg-list .msg')].map(m => ({
    body: m.querySelector('.body').textContent, status: m.dataset.status, seq: m.dataset.seq}))";
const ONLINE: &str = "return document.querySelector('#conn-state')?.dataset.state === 'online'";

async fn sign_in(b: &Browser, url: &str, user: &str, password: &str) {
    b.goto(url).await;
    b.wait(
        "the sign-in form",
        "return !document.querySelector('#signin').hidden",
        json!([]),
    )
    .await;
    b.type_into("#user", user).await;
    b.type_into("#password", password).await;
    b.click("#signin-button").await;
    b.wait(&format!("{user} online"), ONLINE, json!([])).await;
}

/// Waits until the open chat shows a message with `body` and returns it.
async fn wait_message(b: &Browser, who: &str, body: &str) -> Value {
    let script = format!("return {MESSAGES}.find(m => m.body === arguments[0])");
    b.wait(&format!("{who} sees {body:?}"), &script, json!([body]))
        .await
}

async fn wait_status(b: &Browser, body: &str, status: &str) {
    let script = format!(
        "return {MESSAGES}.some(m => m.body === arguments[0] && m.status === arguments[1])"
    );
    b.wait(
        &format!("{body:?} {status}"),
        &script,
        json!([body, status]),
    )
    .await;
}

async fn send(b: &Browser, text: &str) {
    b.type_into("#text", text).await;
    b.click("#send").await;
}

async fn shot(b: &Browser, name: &str) {
    let png = b.screenshot().await;
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("web-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), &png).unwrap();
    if std::env::var_os("ROOST_UPDATE_SCREENSHOTS").is_some() {
        let docs = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/img");
        std::fs::create_dir_all(&docs).unwrap();
        std::fs::write(docs.join(name), &png).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn two_people_chat_in_chromium_through_a_restart() {
    // Tokens live 30 s, so the app must refresh them during the test to stay connected.
    let mut node = Node::builder()
        .toml("[accounts]\ntoken_ttl = \"30s\"")
        .start();
    node.wait_for_log(&["history database ready"]).await;
    roost(
        &node,
        &["user", "add", "alice", "--password-stdin"],
        &format!("{ALICE_PASSWORD}\n"),
    );
    roost(
        &node,
        &["user", "add", "bob", "--password-stdin"],
        &format!("{BOB_PASSWORD}\n"),
    );
    roost(&node, &["group", "add", "family"], "");
    roost(&node, &["group", "member", "add", "family", "alice"], "");
    roost(&node, &["group", "member", "add", "family", "bob"], "");

    // History from before: alice wrote SEEDED messages over the HTTP API.
    let alice_token = login(&node, "alice", ALICE_PASSWORD).await;
    let bearer = format!("Bearer {alice_token}");
    for i in 1..=SEEDED {
        let body =
            json!({"id": format!("seed-{i}"), "kind": "text", "body": format!("earlier {i}")});
        let reply = call(
            node.http,
            "POST",
            "/api/v1/conversations/dm:alice:bob/messages",
            &[
                ("authorization", &bearer),
                ("content-type", "application/json"),
            ],
            body.to_string(),
        )
        .await;
        assert_eq!(reply.status, 200, "{}", reply.body);
    }

    let url = format!("http://{}/", node.http);
    let driver = Driver::start().await;
    let alice = driver.browser(1100, 720, false).await;
    let bob = driver.browser(390, 844, true).await;

    alice.goto(&url).await;
    alice
        .wait(
            "the sign-in form",
            "return !document.querySelector('#signin').hidden",
            json!([]),
        )
        .await;
    shot(&alice, "web-signin.png").await;
    // A wrong password: the login API's refusal, said on the page.
    alice.type_into("#user", "alice").await;
    alice.type_into("#password", "not her password").await;
    alice.click("#signin-button").await;
    let said = alice
        .wait(
            "the refusal shown",
            "return document.querySelector('#signin-error').textContent",
            json!([]),
        )
        .await;
    assert!(
        said.as_str().unwrap().contains("wrong user or password"),
        "{said}"
    );
    sign_in(&alice, &url, "alice", ALICE_PASSWORD).await;
    sign_in(&bob, &url, "bob", BOB_PASSWORD).await;
    let first_token = alice
        .js("return localStorage.getItem('roost.token')", json!([]))
        .await;

    // Bob's list: the DM with its unread count and last message, alice's presence dot.
    let line = bob
        .wait("bob's list has the DM", CONV_LINE, json!(["dm:alice:bob"]))
        .await;
    assert_eq!(line["unread"], SEEDED, "{line}");
    assert_eq!(line["last"], format!("alice: earlier {SEEDED}"));
    bob.wait(
        "alice online in bob's list",
        &format!("return ({})()?.presence === 'online'", js_fn(CONV_LINE)),
        json!(["dm:alice:bob"]),
    )
    .await;

    // Alice starts the DM by user id and sends: pending, then stored (the `ack`), then
    // read once bob opens it. A page-side observer records every state the message shows.
    alice.type_into("#new-dm-user", "bob").await;
    alice.click("#new-dm button").await;
    alice
        .wait(
            "bob online in alice's chat",
            "return document.querySelector('#chat-dot')?.dataset.presence === 'online'",
            json!([]),
        )
        .await;
    alice
        .js(
            "window.seen = []; new MutationObserver(() => {
               for (const m of document.querySelectorAll('#msg-list .msg.mine')) {
                 if (m.querySelector('.body').textContent !== 'hello bob') continue;
                 if (window.seen.at(-1) !== m.dataset.status) window.seen.push(m.dataset.status);
               }
             }).observe(document.querySelector('#msg-list'), {childList: true, subtree: true, attributes: true});",
            json!([]),
        )
        .await;
    send(&alice, "hello bob").await;
    wait_status(&alice, "hello bob", "stored").await;

    let line = bob
        .wait(
            "bob's list shows hello bob",
            &format!(
                "const l = ({})(); return l?.last === 'alice: hello bob' && l",
                js_fn(CONV_LINE)
            ),
            json!(["dm:alice:bob"]),
        )
        .await;
    assert_eq!(line["unread"], SEEDED + 1);
    shot(&bob, "web-phone-list.png").await;
    bob.click("[data-conv=\"dm:alice:bob\"]").await;
    wait_message(&bob, "bob", "hello bob").await;
    wait_status(&alice, "hello bob", "read").await;
    let seen = alice.js("return window.seen", json!([])).await;
    assert_eq!(seen, json!(["pending", "stored", "read"]));
    let line = bob
        .wait(
            "bob's DM read",
            &format!(
                "const l = ({})(); return l?.unread === 0 && l",
                js_fn(CONV_LINE)
            ),
            json!(["dm:alice:bob"]),
        )
        .await;
    assert_eq!(line["unread"], 0);

    // One page of history; scrolling up loads the rest, down to the first message.
    bob.wait(
        "the latest page: 30 messages",
        &format!("return {MESSAGES}.length === 30"),
        json!([]),
    )
    .await;
    send(&bob, "à bientôt, alice").await;
    wait_message(&alice, "alice", "à bientôt, alice").await;
    wait_status(&bob, "à bientôt, alice", "read").await;
    shot(&bob, "web-phone-chat.png").await;
    bob.js(
        "document.querySelector('#messages').scrollTop = 0",
        json!([]),
    )
    .await;
    bob.wait(
        "every message after scrolling up",
        &format!("return {MESSAGES}.length === arguments[0]"),
        json!([SEEDED + 2]),
    )
    .await;
    bob.wait("the start of the conversation", "return document.querySelector('#history-edge').textContent === 'start of the conversation'", json!([]))
        .await;
    wait_message(&bob, "bob", "earlier 1").await;

    // A group message, from bob's phone (back to the list first).
    bob.click("#back").await;
    bob.click("[data-conv=\"grp:family\"]").await;
    send(&bob, "dinner at 7?").await;
    wait_status(&bob, "dinner at 7?", "stored").await;
    let line = alice
        .wait(
            "the group in alice's list",
            &format!(
                "const l = ({})(); return l?.unread === 1 && l",
                js_fn(CONV_LINE)
            ),
            json!(["grp:family"]),
        )
        .await;
    assert_eq!(line["last"], "bob: dinner at 7?");
    alice.click("[data-conv=\"grp:family\"]").await;
    wait_message(&alice, "alice", "dinner at 7?").await;
    wait_status(&bob, "dinner at 7?", "read").await;
    shot(&alice, "web-desktop.png").await;

    // A second tab of alice's: signed in already, a device of its own, sees everything.
    let first_tab = alice.current_tab().await;
    let first_device = alice
        .js("return sessionStorage.getItem('roost.device')", json!([]))
        .await;
    alice.new_tab().await;
    alice.goto(&url).await;
    alice
        .wait("alice's second tab online", ONLINE, json!([]))
        .await;
    let second_device = alice
        .js("return sessionStorage.getItem('roost.device')", json!([]))
        .await;
    assert_ne!(first_device, second_device, "each tab is a device");
    send(&bob, "for every tab").await;
    alice
        .wait(
            "the second tab gets it",
            &format!(
                "return ({})()?.last === 'bob: for every tab'",
                js_fn(CONV_LINE)
            ),
            json!(["grp:family"]),
        )
        .await;
    alice.switch_to(&first_tab).await;
    wait_message(&alice, "alice's first tab", "for every tab").await;

    // Bob away with his DM open (a laptop lid: the page left, kept in the back/forward
    // cache): alice sees him offline and writes twice. When he comes back the same page
    // reconnects by itself and its open chat catches up with `sync` from its cursor: the
    // first message reaches it no other way (the chat's history was fetched already).
    bob.click("#back").await;
    bob.click("[data-conv=\"dm:alice:bob\"]").await;
    wait_message(&bob, "bob", "hello bob").await;
    bob.js("window.keptInCache = true", json!([])).await;
    bob.goto("about:blank").await;
    alice.click("[data-conv=\"dm:alice:bob\"]").await;
    alice
        .wait(
            "bob offline",
            "return document.querySelector('#chat-dot')?.dataset.presence === 'offline'",
            json!([]),
        )
        .await;
    send(&alice, "while you were away").await;
    send(&alice, "still away?").await;
    wait_status(&alice, "still away?", "stored").await;
    bob.back().await;
    bob.wait("bob back online", ONLINE, json!([])).await;
    let kept = bob
        .js("return window.keptInCache === true", json!([]))
        .await;
    assert_eq!(kept, json!(true), "the page came back from the cache");
    wait_message(&bob, "bob", "while you were away").await;
    wait_message(&bob, "bob", "still away?").await;
    wait_status(&alice, "still away?", "read").await;

    // A reload: signed in still, the conversation and its history are there.
    bob.refresh().await;
    bob.wait("bob online after the reload", ONLINE, json!([]))
        .await;
    let line = bob
        .wait(
            "the DM after the reload",
            &format!(
                "const l = ({})(); return l?.last === 'alice: still away?' && l",
                js_fn(CONV_LINE)
            ),
            json!(["dm:alice:bob"]),
        )
        .await;
    assert_eq!(line["unread"], 0, "{line}");
    bob.click("[data-conv=\"dm:alice:bob\"]").await;
    wait_message(&bob, "bob", "hello bob").await;
    wait_message(&bob, "bob", "while you were away").await;

    // The node goes down: what alice sends waits, pending; both pages reconnect by
    // themselves when it is back, and the message is stored, delivered and read.
    node.kill();
    alice
        .wait(
            "alice sees the node gone",
            "return document.querySelector('#conn-state').dataset.state !== 'online'",
            json!([]),
        )
        .await;
    send(&alice, "across a restart").await;
    let pending = wait_message(&alice, "alice", "across a restart").await;
    assert_eq!(pending["status"], "pending");
    node.start_again();
    alice.wait("alice reconnected", ONLINE, json!([])).await;
    bob.wait("bob reconnected", ONLINE, json!([])).await;
    wait_message(&bob, "bob", "across a restart").await;
    wait_status(&alice, "across a restart", "read").await;

    // By now (over 30 s in) the first token has expired: the app refreshed it in time.
    alice
        .wait(
            "a refreshed token",
            "const t = localStorage.getItem('roost.token'); return t !== arguments[0] && t",
            json!([first_token]),
        )
        .await;

    // Signing out forgets the token; a pasted token signs in too (one `roost token` made).
    alice.click("#signout").await;
    alice
        .wait(
            "the sign-in form again",
            "return !document.querySelector('#signin').hidden",
            json!([]),
        )
        .await;
    assert_eq!(
        alice
            .js("return localStorage.getItem('roost.token')", json!([]))
            .await,
        Value::Null
    );
    alice.click("#signin summary").await;
    alice.type_into("#token", &token("alice")).await;
    alice.click("#token-button").await;
    alice
        .wait("alice online with a pasted token", ONLINE, json!([]))
        .await;
    alice.click("[data-conv=\"dm:alice:bob\"]").await;
    wait_message(&alice, "alice", "across a restart").await;

    alice.quit().await;
    bob.quit().await;
}

/// A `return ...;` snippet as a function expression to call in another script.
fn js_fn(snippet: &str) -> String {
    format!("function () {{ {snippet} }}.bind(null, ...arguments)")
}
