//! The backend a gateway node runs on: a broker, an ownership applier and a store,
//! chosen once at start-up. The gateway only asks them; it never decides.

use chathub_broker::{Broker, Hub, MemoryBroker};
use chathub_ownership::{MemoryOwnership, Ownership};
use chathub_store::{ConversationStore, MemoryStore, MemoryStoreConfig};
use std::sync::Arc;

/// The three services behind a gateway node.
pub trait Backend: Send + Sync + 'static {
    /// Pub/sub between nodes.
    type Broker: Broker;
    /// Atomic command application.
    type Ownership: Ownership;
    /// Reads of state, history, queue and read marks.
    type Store: ConversationStore;

    /// The broker.
    fn broker(&self) -> &Self::Broker;
    /// The ownership applier.
    fn ownership(&self) -> &Self::Ownership;
    /// The store.
    fn store(&self) -> &Self::Store;
    /// Whether the backend can serve now (for `/readyz`).
    fn is_ready(&self) -> bool {
        true
    }
}

/// The embedded default: everything in this process, nothing else to install. One node
/// only (its broker reaches only this process).
pub struct EmbeddedBackend {
    broker: MemoryBroker,
    ownership: MemoryOwnership<MemoryBroker>,
    store: MemoryStore,
}

impl EmbeddedBackend {
    /// An embedded backend delivering into `hub`.
    pub fn new(hub: Arc<Hub>, config: MemoryStoreConfig) -> Self {
        let broker = MemoryBroker::new(hub);
        let store = MemoryStore::new(config);
        EmbeddedBackend {
            ownership: MemoryOwnership::new(store.clone(), broker.clone()),
            broker,
            store,
        }
    }
}

impl Backend for EmbeddedBackend {
    type Broker = MemoryBroker;
    type Ownership = MemoryOwnership<MemoryBroker>;
    type Store = MemoryStore;

    fn broker(&self) -> &MemoryBroker {
        &self.broker
    }
    fn ownership(&self) -> &Self::Ownership {
        &self.ownership
    }
    fn store(&self) -> &MemoryStore {
        &self.store
    }
}
