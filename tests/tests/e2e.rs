//! The real `beat` and `worker` binaries together.

use std::time::{Duration, Instant};

use drumbeat_tests::{amqp, free_port, http_get, metric, poll_until, Proc, TestNs};

/// Done tasks as the worker's `/metrics` counts them.
async fn done(port: u16) -> f64 {
    http_get(port, "/metrics")
        .await
        .lines()
        .filter(|l| l.starts_with("drumbeat_tasks_total") && l.contains("outcome=\"done\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Celery beat's classic pitfall: workers down, the beat keeps firing, and when workers return
/// every stale fire runs in a burst. With `expires`, only the fresh fires run; the stale ones
/// are counted as expired, and none is dead-lettered.
#[tokio::test]
async fn fires_piled_up_while_workers_are_down_expire_instead_of_running_in_a_burst() {
    let ns = TestNs::new("stalepile");
    let port = free_port();
    let cfg = ns.config_file(
        "c.toml",
        &format!(
            "[beat]\nlease_ttl = \"3s\"\nrenew_every = \"1s\"\nops_addr = \"off\"\n\
             [worker]\nops_addr = \"127.0.0.1:{port}\"\n\
             [[schedules]]\nname = \"tick\"\ntask = \"log\"\nevery = \"1s\"\nexpires = \"3s\"\n"
        ),
    );
    let cfg = cfg.to_str().unwrap();
    let _beat = Proc::spawn(
        "beat",
        &["--config", cfg, "--id", "b1", "run"],
        &[],
        &ns.dir,
        "beat",
    );
    let (conn, ch) = amqp::channel().await;
    let work = format!("{}.default", ns.ns);
    let dead = format!("{}.default.dead", ns.ns);

    // No worker for 20 fires.
    let started = Instant::now();
    poll_until("20 fires piled up", Duration::from_secs(60), || {
        let (ch, work) = (ch.clone(), work.clone());
        async move { (amqp::message_count(&ch, &work).await? >= 20).then_some(()) }
    })
    .await;
    println!("20 fires piled up in {:.1?}", started.elapsed());

    let restart = Instant::now();
    let _worker = Proc::spawn(
        "worker",
        &["--config", cfg, "--id", "w1", "run"],
        &[],
        &ns.dir,
        "worker",
    );
    poll_until("ops endpoint up", Duration::from_secs(20), || async move {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()
    })
    .await;
    // The pile is consumed when the expired count stops growing and the queue is empty.
    let (expired, ran) = poll_until("pile consumed", Duration::from_secs(30), || {
        let (ch, work) = (ch.clone(), work.clone());
        async move {
            let expired = metric(port, "tasks_expired").await;
            let left = amqp::message_count(&ch, &work).await?;
            (expired >= 15.0 && left == 0).then_some(())?;
            Some((expired, done(port).await))
        }
    })
    .await;
    println!(
        "{:.1?} after restart: {expired} stale fires expired, {ran} fresh fires ran",
        restart.elapsed()
    );
    assert!(expired >= 15.0, "expired {expired}");
    // Fresh at restart: the last ~3 fires of the pile plus the ones fired since.
    assert!(ran <= 8.0, "a burst of stale fires ran: {ran}");
    // Firing goes on normally afterwards.
    poll_until(
        "fresh fires keep running",
        Duration::from_secs(20),
        || async move { (done(port).await >= ran + 2.0).then_some(()) },
    )
    .await;
    assert_eq!(
        amqp::message_count(&ch, &dead).await,
        Some(0),
        "nothing dead-lettered"
    );
    let _ = conn.close(200, "bye".into()).await;
}

/// The configurations the README and docker-compose ship are valid.
#[test]
fn shipped_example_configs_pass_check() {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    for file in ["example/drumbeat.toml", "example/compose.toml"] {
        for bin in ["beat", "worker"] {
            let out = std::process::Command::new(drumbeat_tests::bin_path(bin))
                .args(["--config", root.join(file).to_str().unwrap(), "check"])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{bin} check {file}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}
