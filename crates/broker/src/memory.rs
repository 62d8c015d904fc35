//! The single-process broker: publishing is delivering to this node's hub.

use crate::{Broker, BrokerError, Channel, Envelope, Hub};
use std::sync::Arc;

/// The embedded default's broker. With one node there is nobody else to tell, so a publish
/// is a dispatch into the local [`Hub`], in the caller's order (which is `seq` order, since
/// callers publish under the conversation's lock).
#[derive(Clone)]
pub struct MemoryBroker {
    hub: Arc<Hub>,
}

impl MemoryBroker {
    /// A broker delivering into `hub`.
    pub fn new(hub: Arc<Hub>) -> MemoryBroker {
        MemoryBroker { hub }
    }
}

impl Broker for MemoryBroker {
    async fn publish(&self, channel: &Channel, envelope: Arc<Envelope>) -> Result<(), BrokerError> {
        self.hub.dispatch(channel, &envelope);
        Ok(())
    }

    async fn subscribe(&self, _channel: &Channel) -> Result<(), BrokerError> {
        Ok(())
    }

    async fn unsubscribe(&self, _channel: &Channel) -> Result<(), BrokerError> {
        Ok(())
    }
}
