//! Conversation cycles streamed from the archive's events.

use super::{Archive, decode_event, from_pg};
use crate::StoreError;
use crate::report::{CycleRow, Cycles};
use chathub_domain::TenantId;
use futures::StreamExt;
use tokio::sync::mpsc;

impl crate::report::Reports for Archive {
    /// Streams the tenant's conversation cycles opened in `[from, to)` (ms) into `rows`,
    /// in `(conversation, seq)` order, as they are read (a server-side portal: nothing is
    /// built in memory but the cycle at hand). Stops early when the receiver is gone.
    async fn report_cycles(
        &self,
        tenant: &TenantId,
        from: u64,
        to: u64,
        rows: mpsc::Sender<CycleRow>,
    ) -> Result<(), StoreError> {
        let client = self.client().await?;
        let from_ms = from.min(i64::MAX as u64) as i64;
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&tenant.as_str(), &from_ms];
        let stream = client
            .query_raw(
                "SELECT conversation, body FROM events
                 WHERE tenant = $1 AND at >= $2
                 ORDER BY conversation, seq",
                params,
            )
            .await
            .map_err(from_pg)?;
        let mut stream = std::pin::pin!(stream);
        let mut cycles = Cycles::new(from, to);
        while let Some(row) = stream.next().await {
            let row = row.map_err(from_pg)?;
            let event = decode_event(row.get(1))?;
            if let Some(done) = cycles.push_stored(row.get(0), &event)?
                && rows.send(done).await.is_err()
            {
                return Ok(());
            }
        }
        if let Some(open) = cycles.finish() {
            let _ = rows.send(open).await;
        }
        Ok(())
    }
}
