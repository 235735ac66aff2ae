//! The password-hashing pool: `hash_workers` threads of its own, fed through a queue of
//! `hash_queue` jobs; a job that finds the queue full is refused at once (`Busy`).
//!
//! Why not `spawn_blocking`: each argon2id check allocates about 19 MiB, and the glibc
//! allocator keeps that per thread; spread over tokio's many blocking threads a login
//! storm of 200 connects left the node at 500 MiB. A few long-lived threads reuse theirs.

use tokio::sync::oneshot;

type Job = Box<dyn FnOnce() + Send>;

/// The queue is full (or the workers are gone).
#[derive(Debug)]
pub(crate) struct Busy;

pub(crate) struct HashPool {
    jobs: flume::Sender<Job>,
}

impl HashPool {
    pub(crate) fn new(workers: usize, queue: usize) -> HashPool {
        let (jobs, inbox) = flume::bounded::<Job>(queue);
        for n in 0..workers.max(1) {
            let inbox = inbox.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("roost-hash-{n}"))
                .spawn(move || {
                    while let Ok(job) = inbox.recv() {
                        job();
                    }
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "could not start a password hashing thread");
            }
        }
        HashPool { jobs }
    }

    /// Runs `f` on a worker; `Busy` at once when every worker is taken and the queue full.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Busy> {
        let (done, result) = oneshot::channel();
        self.jobs
            .try_send(Box::new(move || {
                let _ = done.send(f());
            }))
            .map_err(|_| Busy)?;
        result.await.map_err(|_| Busy)
    }
}
