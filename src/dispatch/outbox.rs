//! The outbox task: carries out stored actions through the platforms' executors.

use std::sync::Arc;
use std::time::{Duration, Instant};

use groupguard_core::delivery::{
    Disposition, RetryPolicy, fallback_notice, replaced_note, unreachable_note,
};
use groupguard_core::model::{GroupRef, MemberRef};
use groupguard_core::platform::{
    ActionExecutor, ActionRequest, AdapterError, Capabilities, Capability, Case, Lacking,
    Recipients,
};
use groupguard_core::ports::{ActionId, ActionResult, Edit, OutboxAction};
use groupguard_core::rule::{BlacklistEntry, Source};
use groupguard_core::verdict::Action;
use tokio::sync::watch;

use super::Shared;

/// How long results of carried-out actions may wait to be written together: well within
/// an action's lease.
const FINISH_EVERY: Duration = Duration::from_millis(50);

/// The most actions claimed at once.
const CLAIM: u32 = 128;

/// How often the outbox depth gauge is read while busy.
const DEPTH_EVERY: Duration = Duration::from_secs(1);

/// Carries out stored actions until `stop` turns true, then finishes those already due.
pub async fn run(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut depth_read = Instant::now();
    loop {
        let now = shared.clock.now();
        let lease = now.plus(shared.dispatcher.lease);
        let claimed = match shared.store.claim_actions(now, lease, CLAIM).await {
            Ok(claimed) => claimed,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the outbox");
                Vec::new()
            }
        };
        let idle = claimed.is_empty();
        let mut finished = Vec::new();
        let mut oldest = Instant::now();
        for action in claimed {
            let result = carry_out(&shared, &action).await;
            finished.push(settle(&shared, &action, result));
            if oldest.elapsed() >= FINISH_EVERY {
                finish(&shared, std::mem::take(&mut finished)).await;
                oldest = Instant::now();
            }
        }
        finish(&shared, finished).await;
        if (idle || depth_read.elapsed() >= DEPTH_EVERY)
            && let Ok(depth) = shared.store.outbox_depth().await
        {
            shared.metrics.outbox_depth.set(depth as i64);
            depth_read = Instant::now();
        }
        if !idle {
            continue;
        }
        if *stop.borrow() {
            break;
        }
        tokio::select! {
            _ = shared.outbox_wake.notified() => {}
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            _ = stop.changed() => {}
        }
    }
    tracing::info!("outbox drained");
}

/// Counts how an attempt ended and logs a failure.
fn settle(
    shared: &Shared,
    action: &OutboxAction,
    result: ActionResult,
) -> (ActionId, ActionResult) {
    let label = match &result {
        ActionResult::Done => "done",
        ActionResult::Retry { .. } => "retry",
        ActionResult::Failed { .. } => "failed",
        ActionResult::Replaced { .. } => "replaced",
    };
    shared.metrics.action(action.action.name(), label);
    if let ActionResult::Failed { error } = &result {
        tracing::warn!(action = action.action.name(), member = %action.member, %error, "action failed");
    }
    (action.id, result)
}

/// Records how attempts ended, in one transaction. An action whose end cannot be recorded
/// is tried again when its lease runs out: the platform's idempotency key keeps it from
/// being carried out twice.
async fn finish(shared: &Shared, finished: Vec<(ActionId, ActionResult)>) {
    if finished.is_empty() {
        return;
    }
    match shared.store.finish_actions(&finished).await {
        Ok(outcomes) => {
            for ((id, _), outcome) in finished.iter().zip(outcomes) {
                if let Err(e) = outcome {
                    tracing::warn!(error = %e, id, "how an action ended was not recorded");
                }
            }
        }
        Err(e) => {
            tracing::error!(error = %e, actions = finished.len(), "cannot record how actions ended")
        }
    }
}

/// What the executor is asked: the stored action with who to tell, and a review request
/// as the notice that reaches moderators.
fn request(shared: &Shared, action: &OutboxAction) -> ActionRequest {
    let group = GroupRef::new(action.platform, action.group.clone());
    let notify = shared
        .rules
        .rules()
        .group(&group)
        .map(|g| Recipients {
            owner: g.owner.clone(),
            admins: g.admins.clone(),
        })
        .unwrap_or_default();
    let what = match &action.action {
        Action::QueueReview { summary } => Action::NotifyAdmins {
            text: format!("please review: {summary}"),
        },
        other => other.clone(),
    };
    ActionRequest {
        key: action.key.clone(),
        platform: action.platform,
        group: action.group.clone(),
        member: action.member.clone(),
        message: action.message.clone(),
        action: what,
        rule: action.rule.clone(),
        notify,
        case: None,
        ban: false,
    }
}

/// Whether a kick should keep the member out: they are on the active blacklist, or the same
/// violation blacklists them.
fn keeps_out(shared: &Shared, action: &OutboxAction) -> bool {
    let member = MemberRef::new(action.platform, action.member.clone());
    let owner = shared
        .rules
        .rules()
        .group(&GroupRef::new(action.platform, action.group.clone()))
        .and_then(|g| g.owner.clone());
    let now = shared.clock.now();
    let listed = shared
        .rules
        .blacklist()
        .entry(&member, owner.as_ref())
        .is_some_and(|entry| entry.is_active(now));
    listed
        || action
            .record
            .actions
            .iter()
            .any(|a| matches!(a, Action::Blacklist { .. }))
}

async fn carry_out(shared: &Shared, action: &OutboxAction) -> ActionResult {
    if let Action::Blacklist {
        owner,
        reason,
        expires_at,
    } = &action.action
    {
        let now = shared.clock.now();
        let entry = BlacklistEntry {
            member: MemberRef::new(action.platform, action.member.clone()),
            owner: owner.clone(),
            reason: reason.clone(),
            source: Source::Rule(action.rule.clone()),
            created_at: now,
            expires_at: *expires_at,
        };
        let edit = Edit::new(Source::Rule(action.rule.clone()), now);
        let result = match shared.blacklist(entry, &edit).await {
            Ok(()) => ActionResult::Done,
            Err(e) => ActionResult::Failed {
                error: e.to_string(),
            },
        };
        return result;
    }
    let Some(executor) = shared.executors.get(&action.platform) else {
        let error = format!("no {} adapter is running", action.platform);
        return ActionResult::Failed { error };
    };
    let mut request = request(shared, action);
    match request.action {
        Action::Kick => request.ban = keeps_out(shared, action),
        _ if Capability::needed_for(&request.action) == Some(Capability::Notify) => {
            request.case = Some(Case::of(&action.record));
        }
        _ => {}
    }
    let capabilities = executor.capabilities(&action.group).await;
    let lacking = match capabilities.check(&request.action) {
        Err(lacking) => lacking,
        Ok(()) => {
            let result = attempt(shared, executor.as_ref(), &request).await;
            match disposition(shared, &request, result.as_ref().map(drop), action.attempts)
                .outcome()
            {
                Ok(result) => return result,
                Err(lacking) => lacking,
            }
        }
    };
    fall_back(
        shared,
        executor.as_ref(),
        action,
        &request,
        &capabilities,
        lacking,
    )
    .await
}

/// What follows an attempt, by the core's delivery rules.
fn disposition(
    shared: &Shared,
    request: &ActionRequest,
    result: Result<(), &AdapterError>,
    attempts: u32,
) -> Disposition {
    let policy = RetryPolicy {
        max_attempts: shared.dispatcher.max_attempts,
    };
    Disposition::of(
        &request.action,
        result,
        attempts,
        &policy,
        shared.clock.now(),
    )
}

/// One call to the platform, within its budget.
async fn attempt(
    shared: &Shared,
    executor: &dyn ActionExecutor,
    request: &ActionRequest,
) -> Result<(), AdapterError> {
    if let Some(limiter) = shared.limits.get(&request.platform) {
        limiter.acquire().await;
    }
    let started = Instant::now();
    let result = executor.execute(request).await;
    shared
        .metrics
        .action_seconds
        .observe(started.elapsed().as_secs_f64());
    result
}

/// The platform will not do it: ask the group's admins to, and record that. The notice has
/// its own key derived from the action's, so a retried fallback is posted once.
async fn fall_back(
    shared: &Shared,
    executor: &dyn ActionExecutor,
    action: &OutboxAction,
    request: &ActionRequest,
    capabilities: &Capabilities,
    lacking: Lacking,
) -> ActionResult {
    let is_notice = Capability::needed_for(&request.action) == Some(Capability::Notify);
    if is_notice || !capabilities.has(Capability::Notify) {
        let error = unreachable_note(request, &lacking);
        return ActionResult::Failed { error };
    }
    let notice = ActionRequest {
        key: request.key.derived("fallback"),
        action: Action::NotifyAdmins {
            text: fallback_notice(request, &lacking),
        },
        case: Some(Case::of(&action.record)),
        ..request.clone()
    };
    let result = attempt(shared, executor, &notice).await;
    match disposition(shared, &notice, result.as_ref().map(drop), action.attempts).outcome() {
        Ok(ActionResult::Done) => ActionResult::Replaced {
            note: replaced_note(request, &lacking),
        },
        Ok(ActionResult::Failed { error }) => ActionResult::Failed {
            error: format!("the admins could not be asked to act: {error}"),
        },
        Ok(retry) => retry,
        Err(refused) => ActionResult::Failed {
            error: unreachable_note(&notice, &refused),
        },
    }
}
