//! Durable jobs that follow a command: today the offline delivery webhook's. The atomic
//! step that records an agent's message also records its job, keyed by
//! `(tenant, conversation, seq)`, due after a lease: the node that applied the command
//! handles it at once and completes it; if that node dies, any node's sweeper claims it
//! once it is due (claiming moves it one lease further, so one node at a time has it).
//!
//! Redis layout: one sorted set per tenant (`tenant:{t}:jobs:webhook`, in the tenant's
//! slot: the step that updates the tenant's queue writes it), members `<seq>:<conversation>`
//! scored by due time; and the set of tenants that may have jobs (`jobs:tenants`), which
//! a node adds a tenant to before the tenant's first session is served.

use crate::{RedisKeys, StoreError};
use chathub_domain::{ConversationId, TenantId};
use redis::aio::ConnectionLike;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, LazyLock, Mutex};

/// One pending webhook job: the agent message `seq` of `conversation` may need a push.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WebhookJob {
    /// The tenant.
    pub tenant: TenantId,
    /// The conversation (the end user).
    pub conversation: ConversationId,
    /// The message's `seq`.
    pub seq: u64,
}

impl WebhookJob {
    /// The job's member in its tenant's set: `<seq>:<conversation>` (the seq has no `:`,
    /// so the conversation id may).
    pub fn member(&self) -> String {
        format!("{}:{}", self.seq, self.conversation)
    }

    /// Parses a member of `tenant`'s set.
    pub fn parse(tenant: &TenantId, member: &str) -> Option<WebhookJob> {
        let (seq, conversation) = member.split_once(':')?;
        Some(WebhookJob {
            tenant: tenant.clone(),
            conversation: ConversationId::new(conversation).ok()?,
            seq: seq.parse().ok()?,
        })
    }
}

/// The pending webhook jobs.
///
/// Guarantees: a job recorded by an acknowledged command stays until [`complete`] is
/// called for it (node deaths included, on Redis); [`claim_due`] hands a due job to one
/// caller per lease.
///
/// [`complete`]: WebhookJobs::complete
/// [`claim_due`]: WebhookJobs::claim_due
pub trait WebhookJobs: Send + Sync + 'static {
    /// Makes `tenant`'s jobs visible to every node's sweeper (idempotent; call before
    /// the tenant's first command on this node).
    fn register_tenant(
        &self,
        tenant: &TenantId,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Up to `limit` jobs due at `now` (ms), each now leased for `lease_ms`: nobody else
    /// claims it before the lease ends.
    fn claim_due(
        &self,
        now: u64,
        lease_ms: u64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<WebhookJob>, StoreError>> + Send;

    /// The job is done (delivered, not needed, or given up): it is never handed out again.
    fn complete(&self, job: &WebhookJob) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// The embedded twin: jobs in this process (written by the memory ownership twin).
#[derive(Clone, Default)]
pub struct MemoryJobs {
    due: Arc<Mutex<BTreeMap<WebhookJob, u64>>>,
    /// Where completions are kept (`None`: memory only).
    journal: Option<crate::sqlite::Journal>,
}

impl MemoryJobs {
    /// Jobs whose completions are kept in `journal` (new jobs are journaled by the
    /// command that makes them, with its other writes).
    pub fn journaled(journal: crate::sqlite::Journal) -> Self {
        MemoryJobs {
            due: Arc::default(),
            journal: Some(journal),
        }
    }

    /// Records a job due at `due` (ms); recording it again keeps the first.
    pub fn add(&self, job: WebhookJob, due: u64) {
        let mut jobs = self.due.lock().unwrap_or_else(|p| p.into_inner());
        jobs.entry(job).or_insert(due);
    }

    /// Drops the pending jobs of an erased conversation (their rows go with the erasure's
    /// own write); returns how many.
    pub fn remove_conversation(&self, tenant: &TenantId, conversation: &ConversationId) -> u64 {
        let mut jobs = self.due.lock().unwrap_or_else(|p| p.into_inner());
        let before = jobs.len();
        jobs.retain(|job, _| !(job.tenant == *tenant && job.conversation == *conversation));
        (before - jobs.len()) as u64
    }

    /// How many jobs are pending.
    pub fn len(&self) -> usize {
        self.due.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether no job is pending.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl WebhookJobs for MemoryJobs {
    async fn register_tenant(&self, _tenant: &TenantId) -> Result<(), StoreError> {
        Ok(())
    }

    async fn claim_due(
        &self,
        now: u64,
        lease_ms: u64,
        limit: usize,
    ) -> Result<Vec<WebhookJob>, StoreError> {
        let mut jobs = self.due.lock().unwrap_or_else(|p| p.into_inner());
        let mut claimed = Vec::new();
        for (job, due) in jobs.iter_mut() {
            if claimed.len() >= limit {
                break;
            }
            if *due <= now {
                *due = now + lease_ms;
                claimed.push(job.clone());
            }
        }
        Ok(claimed)
    }

    async fn complete(&self, job: &WebhookJob) -> Result<(), StoreError> {
        if let Some(journal) = &self.journal {
            let done = crate::sqlite::Write::JobDone { job: job.clone() };
            journal.commit(vec![done]).await?;
        }
        self.due
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(job);
        Ok(())
    }
}

/// Claims the due members of one tenant's set: `ZRANGEBYSCORE` then a new score one
/// lease ahead, in one step.
static CLAIM: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
-- KEYS[1] the tenant's job set   ARGV[1] now (ms)   ARGV[2] lease (ms)   ARGV[3] limit
local jobs_key, now, lease, limit = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local due = redis.call('ZRANGEBYSCORE', jobs_key, '-inf', now, 'LIMIT', 0, limit)
for _, member in ipairs(due) do
  redis.call('ZADD', jobs_key, now + lease, member)
end
return due
",
    )
});

/// The Redis jobs (see the module docs), over any async connection.
#[derive(Clone)]
pub struct RedisJobs<C> {
    conn: C,
    keys: RedisKeys,
}

impl<C> RedisJobs<C> {
    /// Jobs under `keys`, through `conn`.
    pub fn new(conn: C, keys: RedisKeys) -> Self {
        RedisJobs { conn, keys }
    }
}

impl<C: ConnectionLike + Clone + Send + Sync + 'static> WebhookJobs for RedisJobs<C> {
    async fn register_tenant(&self, tenant: &TenantId) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        redis::cmd("SADD")
            .arg(self.keys.job_tenants())
            .arg(tenant.as_str())
            .exec_async(&mut conn)
            .await
            .map_err(StoreError::from_redis)
    }

    async fn claim_due(
        &self,
        now: u64,
        lease_ms: u64,
        limit: usize,
    ) -> Result<Vec<WebhookJob>, StoreError> {
        let mut conn = self.conn.clone();
        let tenants: Vec<String> = redis::cmd("SMEMBERS")
            .arg(self.keys.job_tenants())
            .query_async(&mut conn)
            .await
            .map_err(StoreError::from_redis)?;
        let mut claimed = Vec::new();
        for tenant in tenants {
            if claimed.len() >= limit {
                break;
            }
            let Ok(tenant) = TenantId::new(tenant) else {
                continue;
            };
            let members: Vec<String> = CLAIM
                .key(self.keys.webhook_jobs(&tenant))
                .arg(now)
                .arg(lease_ms)
                .arg(limit - claimed.len())
                .invoke_async(&mut conn)
                .await
                .map_err(StoreError::from_redis)?;
            claimed.extend(members.iter().filter_map(|m| WebhookJob::parse(&tenant, m)));
        }
        Ok(claimed)
    }

    async fn complete(&self, job: &WebhookJob) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        redis::cmd("ZREM")
            .arg(self.keys.webhook_jobs(&job.tenant))
            .arg(job.member())
            .exec_async(&mut conn)
            .await
            .map_err(StoreError::from_redis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_round_trip_with_colons_in_ids() {
        let tenant = TenantId::new("t").unwrap();
        let job = WebhookJob {
            tenant: tenant.clone(),
            conversation: ConversationId::new("u:1:x").unwrap(),
            seq: 42,
        };
        assert_eq!(job.member(), "42:u:1:x");
        assert_eq!(WebhookJob::parse(&tenant, &job.member()), Some(job));
        assert_eq!(WebhookJob::parse(&tenant, "x:u"), None);
    }

    #[tokio::test]
    async fn a_claimed_job_is_leased_until_completed() {
        let jobs = MemoryJobs::default();
        let job = WebhookJob {
            tenant: TenantId::new("t").unwrap(),
            conversation: ConversationId::new("u").unwrap(),
            seq: 3,
        };
        jobs.add(job.clone(), 100);
        assert!(
            jobs.claim_due(99, 50, 10).await.unwrap().is_empty(),
            "not due yet"
        );
        assert_eq!(
            jobs.claim_due(100, 50, 10).await.unwrap(),
            vec![job.clone()]
        );
        assert!(
            jobs.claim_due(120, 50, 10).await.unwrap().is_empty(),
            "leased"
        );
        assert_eq!(
            jobs.claim_due(150, 50, 10).await.unwrap(),
            vec![job.clone()],
            "lease over"
        );
        jobs.complete(&job).await.unwrap();
        assert!(jobs.claim_due(1000, 50, 10).await.unwrap().is_empty());
        assert!(jobs.is_empty());
    }
}
