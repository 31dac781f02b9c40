//! Two beats started at the same instant: exactly one leads, nothing is sent twice.

use std::path::Path;
use std::sync::Barrier;
use std::time::Duration;

use drumbeat_tests::{poll_until, Proc, TestNs, REDIS_URL};

use super::support::{
    audit_all, lease_holder, role_count, spawn_beat, stop_clean, tick_config, Ledger,
};

const ROUNDS: usize = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_beats_started_together_exactly_one_leads() {
    let mut wins = Vec::new();
    for round in 0..ROUNDS {
        let ns = TestNs::new("beat-race");
        let cfg = tick_config(&ns);
        let ledger = Ledger::start(&ns);
        let (mut a, mut b) = spawn_together(&ns, &cfg);
        poll_until(
            "one of the two to lead",
            Duration::from_secs(15),
            || async { (role_count(&a, "leader") + role_count(&b, "leader") > 0).then_some(()) },
        )
        .await;
        ledger.wait_count(3, Duration::from_secs(15)).await;
        let (la, lb) = (role_count(&a, "leader"), role_count(&b, "leader"));
        assert_eq!(
            la + lb,
            1,
            "round {round}: leader transitions a={la} b={lb}"
        );
        let winner = if la == 1 { "a" } else { "b" };
        assert_eq!(lease_holder(&ns, REDIS_URL).await.as_deref(), Some(winner));
        wins.push(winner);

        // Standby first, so the lease is not handed over during shutdown.
        let (standby, leader) = if la == 1 {
            (&mut b, &mut a)
        } else {
            (&mut a, &mut b)
        };
        stop_clean(standby);
        stop_clean(leader);
        let fires = ledger.finish(Duration::from_secs(1)).await;
        let (audit, _, _) = audit_all(&format!("race round {round}"), &fires);
        assert!(
            audit.missing.is_empty(),
            "round {round}: fires lost: {:?}",
            audit.missing
        );
        assert_eq!(audit.duplicates, 0, "round {round}: a fire was sent twice");
    }
    println!("race winners: {wins:?}");
}

/// Spawns beats `a` and `b` from two threads released by one barrier.
fn spawn_together(ns: &TestNs, cfg: &Path) -> (Proc, Proc) {
    let gate = Barrier::new(2);
    std::thread::scope(|s| {
        let one = |id: &'static str| {
            let gate = &gate;
            s.spawn(move || {
                gate.wait();
                spawn_beat(ns, cfg, id, &[])
            })
        };
        let (a, b) = (one("a"), one("b"));
        (a.join().unwrap(), b.join().unwrap())
    })
}
