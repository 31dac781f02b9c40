//! `dlq purge`: refused without `--yes`, deletes only the selection, audited.

use drumbeat_tests::TestNs;
use serde_json::Value;

use super::*;

#[tokio::test]
async fn purge_needs_yes_and_deletes_only_the_selection() {
    let ns = TestNs::new("dlq-purge");
    let (_settings, cfg) = four_dead_letters(&ns).await;
    let (code, _, err) = dlq(&cfg, &["purge", "--reason", "unknown-task"]).await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--yes"), "{err}");
    assert_eq!(dead_depth(&ns).await, 4, "refused: nothing deleted");
    let (code, _, _) = dlq(&cfg, &["purge", "--id", "nope", "--yes"]).await;
    assert_eq!(code, 3);
    assert!(
        audit(&ns).await.is_empty(),
        "refusals and not-found are not recorded"
    );

    let out = dlq_json(
        &cfg,
        &[
            "purge",
            "--reason",
            "unknown-task",
            "--yes",
            "--by",
            "carol",
            "--note",
            "junk",
        ],
    )
    .await;
    assert_eq!(out, serde_json::json!({"purged": 2}));
    assert_eq!(dead_depth(&ns).await, 2);
    let mut left: Vec<String> = listed(&dlq_json(&cfg, &["list"]).await)
        .into_iter()
        .map(|(_, r)| r)
        .collect();
    left.sort();
    assert_eq!(left, ["invalid-json", "max-attempts"]);
    let entries = audit(&ns).await;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["action"], "purge");
    assert_eq!(entries[0]["by"], "carol");
    assert_eq!(entries[0]["note"], "junk");
    assert!(entries[0]["target"].contains("reason=unknown-task"));

    // Ids that exist are purged; the ones that do not are named.
    let (code, out, err) = dlq(
        &cfg,
        &["purge", "--id", "bad-json", "ghost", "--yes", "--json"],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["purged"], 1);
    assert!(err.contains("ghost") && !err.contains("bad-json"), "{err}");
    assert_eq!(dead_depth(&ns).await, 1);
    assert_eq!(audit(&ns).await.len(), 2);
}
