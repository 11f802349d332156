//! Queues that let one task do the work of many requests at once (SQLite).
//!
//! sqlx runs every SQLite statement on the connection's own thread: each
//! statement costs two thread hand-offs, and under load those hand-offs were
//! most of the server's CPU (measured with `perf`). A [`BatchQueue`] collects
//! what concurrent requests ask for and one task serves everything queued
//! with a fixed number of statements, answering each request in order.
//!
//! The queue is unbounded but never longer than the requests in flight, each
//! of which waits for its answer. Its task starts on first use and ends once
//! every clone of the owning `Database` is gone.

use std::future::Future;
use std::sync::{Arc, OnceLock};

use portcullis_domain::error::Failure;
use tokio::sync::{mpsc, oneshot};

use super::Database;

/// Most items served together.
pub(crate) const MAX_BATCH: usize = 64;

/// Work that is cheaper done for many requests at once.
pub(crate) trait Batch: Send + Sync + 'static {
    type Item: Send + Sync + 'static;
    type Output: Send + 'static;

    /// Serves `items` together: one output per item, in order. A failure
    /// fails every item.
    fn serve<'a>(
        db: &'a Database,
        items: &'a [&'a Self::Item],
    ) -> impl Future<Output = Result<Vec<Self::Output>, Failure>> + Send + 'a;
}

struct Job<B: Batch> {
    item: B::Item,
    reply: oneshot::Sender<Result<B::Output, Failure>>,
}

/// The queue in front of one batching task. Clones share it.
pub(crate) struct BatchQueue<B: Batch> {
    sender: Arc<OnceLock<mpsc::UnboundedSender<Job<B>>>>,
}

impl<B: Batch> Default for BatchQueue<B> {
    fn default() -> Self {
        Self {
            sender: Arc::new(OnceLock::new()),
        }
    }
}

impl<B: Batch> Clone for BatchQueue<B> {
    fn clone(&self) -> Self {
        Self {
            sender: Arc::clone(&self.sender),
        }
    }
}

impl<B: Batch> BatchQueue<B> {
    /// Queues `item` and waits for its output.
    pub(crate) async fn submit(&self, db: &Database, item: B::Item) -> Result<B::Output, Failure> {
        let sender = self.sender.get_or_init(|| {
            let (sender, receiver) = mpsc::unbounded_channel();
            // The task holds the pool but not the queues, so it ends (and
            // lets the pool go) once every clone of the `Database` is gone.
            tokio::spawn(drain::<B>(db.without_queues(), receiver));
            sender
        });
        let (reply, output) = oneshot::channel();
        if let Err(mpsc::error::SendError(job)) = sender.send(Job { item, reply }) {
            // The task is gone (its runtime stopped): serve this one alone.
            return B::serve(db, &[&job.item])
                .await?
                .pop()
                .ok_or_else(|| Failure::Unexpected(anyhow::anyhow!("a batch lost its item")));
        }
        output.await.unwrap_or_else(|_| {
            Err(Failure::Unavailable(anyhow::anyhow!(
                "the batching task stopped"
            )))
        })
    }
}

/// Serves everything queued, batch after batch.
async fn drain<B: Batch>(db: Database, mut receiver: mpsc::UnboundedReceiver<Job<B>>) {
    let mut jobs = Vec::with_capacity(MAX_BATCH);
    while receiver.recv_many(&mut jobs, MAX_BATCH).await > 0 {
        // A caller that went away (its client hung up) is not served: for a
        // rotation, nobody would ever see the successor token.
        jobs.retain(|job| !job.reply.is_closed());
        if jobs.is_empty() {
            continue;
        }
        let items: Vec<&B::Item> = jobs.iter().map(|job| &job.item).collect();
        let outcome = B::serve(&db, &items).await;
        drop(items);
        match outcome {
            Ok(outputs) if outputs.len() == jobs.len() => {
                for (job, output) in jobs.drain(..).zip(outputs) {
                    let _ = job.reply.send(Ok(output));
                }
            }
            Ok(_) => {
                for job in jobs.drain(..) {
                    let _ = job.reply.send(Err(Failure::Unexpected(anyhow::anyhow!(
                        "a batch answered the wrong number of items",
                    ))));
                }
            }
            Err(error) => {
                for job in jobs.drain(..) {
                    let _ = job.reply.send(Err(error.duplicate()));
                }
            }
        }
    }
}

/// `items` with its last item repeated up to the next power of two.
///
/// sqlx keeps every distinct statement it prepares, per connection: a
/// multi-row statement for each batch size would fill that cache with large
/// statements (measured: RSS 24 -> 75 MiB). Padded, a batch uses one of seven
/// sizes. The statements of the batches tolerate the repeats: `IN` lists
/// ignore them, and a repeated upsert row writes the same values again
/// (SQLite allows one statement to touch a row twice; batches run on SQLite
/// only).
pub(crate) fn padded<T: Clone>(mut items: Vec<T>) -> Vec<T> {
    if let Some(last) = items.last().cloned() {
        items.resize(items.len().next_power_of_two(), last);
    }
    items
}

#[cfg(test)]
mod tests {
    use super::padded;

    #[test]
    fn batches_are_padded_to_a_power_of_two_with_the_last_item() {
        assert_eq!(padded(Vec::<u8>::new()), Vec::<u8>::new());
        assert_eq!(padded(vec![1]), vec![1]);
        assert_eq!(padded(vec![1, 2, 3]), vec![1, 2, 3, 3]);
        assert_eq!(padded(vec![1; 64]).len(), 64);
        assert_eq!(padded(vec![7; 33]).len(), 64);
    }
}
