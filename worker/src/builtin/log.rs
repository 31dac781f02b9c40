//! `log`: writes its args to the log at INFO; for demos and smoke tests.

use crate::handler::{Task, TaskResult};

/// Logs the task's ID, attempt and args.
pub async fn run(task: Task<serde_json::Value>) -> TaskResult {
    tracing::info!(
        id = %task.id,
        attempt = task.attempt,
        schedule = task.schedule.as_deref().unwrap_or("-"),
        args = %task.args,
        "log task"
    );
    Ok(())
}
