//! docker-compose.yml and the Dockerfile are checked by parsing, since no Docker engine runs here.

use std::path::PathBuf;

fn repo_file(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(name)
}

#[test]
fn compose_file_describes_the_whole_system() {
    let text = std::fs::read_to_string(repo_file("docker-compose.yml")).unwrap();
    let doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let services = doc["services"].as_mapping().expect("services");
    let names: Vec<&str> = services.keys().filter_map(|k| k.as_str()).collect();
    for want in [
        "redis", "rabbitmq", "beat-1", "beat-2", "worker-1", "worker-2",
    ] {
        assert!(
            names.contains(&want),
            "service {want} missing from {names:?}"
        );
    }
    assert!(doc["services"]["redis"]["image"]
        .as_str()
        .unwrap()
        .starts_with("redis:"));
    assert!(doc["services"]["rabbitmq"]["image"]
        .as_str()
        .unwrap()
        .starts_with("rabbitmq:3"));
    let redis_cmd = format!("{:?}", doc["services"]["redis"]["command"]);
    assert!(
        redis_cmd.contains("appendonly"),
        "production Redis needs AOF: {redis_cmd}"
    );
    for infra in ["redis", "rabbitmq"] {
        assert!(
            doc["services"][infra]["healthcheck"]["test"].is_sequence(),
            "{infra} healthcheck"
        );
    }
    for (svc, bin) in [
        ("beat-1", "beat"),
        ("beat-2", "beat"),
        ("worker-1", "worker"),
        ("worker-2", "worker"),
    ] {
        let s = &doc["services"][svc];
        assert!(
            s["build"].is_mapping() || s["build"].is_string() || s["image"].is_string(),
            "{svc} build"
        );
        let cmd = format!("{:?}", s["command"]);
        assert!(cmd.contains(bin), "{svc} command {cmd}");
        let env = format!("{:?}", s["environment"]);
        assert!(env.contains("DRUMBEAT__REDIS__URL"), "{svc} env {env}");
        assert!(env.contains("DRUMBEAT__AMQP__URL"), "{svc} env {env}");
        let deps = format!("{:?}", s["depends_on"]);
        assert!(
            deps.contains("service_healthy"),
            "{svc} must wait for healthy services: {deps}"
        );
        assert!(s["healthcheck"]["test"].is_sequence(), "{svc} healthcheck");
    }
    let dockerfile = std::fs::read_to_string(repo_file("Dockerfile")).unwrap();
    assert!(
        dockerfile.matches("FROM ").count() >= 2,
        "multi-stage Dockerfile"
    );
    assert!(dockerfile.contains("cargo build --release"));
    // When Debian's docker-compose is installed it validates the file without an engine.
    if let Ok(out) = std::process::Command::new("docker-compose")
        .args([
            "-f",
            repo_file("docker-compose.yml").to_str().unwrap(),
            "config",
            "-q",
        ])
        .output()
    {
        assert!(
            out.status.success(),
            "docker-compose config: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        println!("docker-compose config -q: ok");
    }
}
