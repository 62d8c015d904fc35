//! Where a component's background tasks run: under a node's cancellation token and task
//! tracker, so stopping the node stops them and waiting for the node waits for them.

use std::future::Future;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// A node's background tasks (keepalives, writers, workers, health checks). Cheap to
/// clone. The default is a tracker and a token of its own, never cancelled: tasks then
/// live until their own end, as with `tokio::spawn` (tests and benchmarks that build one
/// component alone).
#[derive(Clone, Default)]
pub struct Tasks {
    tracker: TaskTracker,
    shutdown: CancellationToken,
}

impl Tasks {
    /// Tasks tracked by `tracker`, stopped when `shutdown` is cancelled.
    pub fn new(tracker: TaskTracker, shutdown: CancellationToken) -> Tasks {
        Tasks { tracker, shutdown }
    }

    /// Runs `task` in the background until it ends or the node shuts down, whichever is
    /// first (the task is dropped at its next await then).
    pub fn spawn<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let shutdown = self.shutdown.clone();
        self.tracker.spawn(async move {
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = task => {}
            }
        });
    }

    /// The token cancelled when the node shuts down.
    pub fn shutdown(&self) -> &CancellationToken {
        &self.shutdown
    }

    /// The tracker of every task spawned here.
    pub fn tracker(&self) -> &TaskTracker {
        &self.tracker
    }

    /// How many of these tasks are still running.
    pub fn running(&self) -> usize {
        self.tracker.len()
    }
}
