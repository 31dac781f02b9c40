//! `deploy/kubernetes/` is checked by parsing (no cluster runs here): every manifest the
//! kustomization lists is valid YAML of a known kind, the pieces refer to each other by the
//! right names, the ConfigMap's drumbeat.toml passes drumbeat's own validation with the
//! Secret's URLs in it, and the numbers that must agree do (docs/design.md §13).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;
use serde_yaml::Value;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/kubernetes")
}

/// Every document of every resource the kustomization lists, by `Kind/name`.
fn manifests() -> BTreeMap<String, Value> {
    let k: Value =
        serde_yaml::from_str(&std::fs::read_to_string(dir().join("kustomization.yaml")).unwrap())
            .unwrap();
    let mut out = BTreeMap::new();
    for file in k["resources"].as_sequence().expect("resources") {
        let file = file.as_str().unwrap();
        let text = std::fs::read_to_string(dir().join(file)).unwrap();
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let v = Value::deserialize(doc).unwrap_or_else(|e| panic!("{file}: {e}"));
            let kind = v["kind"]
                .as_str()
                .unwrap_or_else(|| panic!("{file}: no kind"));
            let name = v["metadata"]["name"].as_str().expect("metadata.name");
            assert!(
                v["apiVersion"].is_string(),
                "{file}: {kind} has no apiVersion"
            );
            let key = format!("{kind}/{name}");
            assert!(out.insert(key, v.clone()).is_none(), "{kind}/{name} twice");
        }
    }
    out
}

fn get<'a>(m: &'a BTreeMap<String, Value>, key: &str) -> &'a Value {
    m.get(key)
        .unwrap_or_else(|| panic!("{key} missing from {:?}", m.keys().collect::<Vec<_>>()))
}

/// The ConfigMap's drumbeat.toml with the Secret's URLs put in, validated by drumbeat itself.
fn settings(m: &BTreeMap<String, Value>) -> drumbeat_common::Settings {
    let text = get(m, "ConfigMap/drumbeat-config")["data"]["drumbeat.toml"]
        .as_str()
        .expect("drumbeat.toml in the ConfigMap");
    let mut table: toml::Table = text.parse().expect("ConfigMap TOML");
    let secret = &get(m, "Secret/drumbeat-urls")["stringData"];
    for (section, var) in [
        ("redis", "DRUMBEAT__REDIS__URL"),
        ("amqp", "DRUMBEAT__AMQP__URL"),
    ] {
        let url = secret[var]
            .as_str()
            .unwrap_or_else(|| panic!("{var} in the Secret"));
        table[section]
            .as_table_mut()
            .unwrap()
            .insert("url".into(), toml::Value::String(url.into()));
    }
    let token = secret["DRUMBEAT__OPS__TOKENS__ADMIN"]
        .as_str()
        .expect("token");
    let mut ops = toml::Table::new();
    let mut tokens = toml::Table::new();
    tokens.insert("admin".into(), toml::Value::String(token.into()));
    ops.insert("tokens".into(), toml::Value::Table(tokens));
    table.insert("ops".into(), toml::Value::Table(ops));
    drumbeat_common::Settings::from_toml(&toml::to_string(&table).unwrap())
        .unwrap_or_else(|e| panic!("the ConfigMap + Secret do not validate: {e}"))
}

fn pod_spec<'a>(m: &'a BTreeMap<String, Value>, deployment: &str) -> &'a Value {
    &get(m, &format!("Deployment/{deployment}"))["spec"]["template"]["spec"]
}

#[test]
fn manifests_fit_together_and_validate() {
    let m = manifests();
    let s = settings(&m);
    assert_eq!(
        s.amqp.nodes().count(),
        3,
        "the Secret lists one AMQP URL per node"
    );
    let beat = get(&m, "Deployment/drumbeat-beat");
    assert_eq!(
        beat["spec"]["replicas"].as_u64(),
        Some(2),
        "leader + hot standby"
    );

    for (deployment, bin, addr) in [
        ("drumbeat-beat", "beat", s.beat.ops_addr),
        ("drumbeat-worker", "worker", s.worker.ops_addr),
    ] {
        let d = get(&m, &format!("Deployment/{deployment}"));
        let labels = &d["spec"]["template"]["metadata"]["labels"];
        assert_eq!(
            &d["spec"]["selector"]["matchLabels"], labels,
            "{deployment}: selector = template labels"
        );
        let spec = pod_spec(&m, deployment);
        assert_eq!(
            spec["securityContext"]["runAsNonRoot"].as_bool(),
            Some(true)
        );
        let c = &spec["containers"][0];
        assert_eq!(
            c["command"][0].as_str(),
            Some(bin),
            "{deployment} runs {bin}"
        );
        let args: Vec<&str> = c["args"]
            .as_sequence()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(args.last(), Some(&"run"), "{deployment} args {args:?}");
        // The ops server must listen beyond loopback for the kubelet's probes to reach it.
        let addr = addr.unwrap_or_else(|| panic!("{deployment}: ops server is off"));
        assert!(addr.ip().is_unspecified(), "{deployment}: ops_addr {addr}");
        let port = c["ports"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|p| p["name"].as_str() == Some("ops"))
            .and_then(|p| p["containerPort"].as_u64())
            .expect("an `ops` port");
        assert_eq!(
            port,
            u64::from(addr.port()),
            "{deployment}: port vs ops_addr"
        );
        for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
            assert_eq!(
                c[probe]["httpGet"]["path"].as_str(),
                Some(path),
                "{deployment}"
            );
            assert_eq!(
                c[probe]["httpGet"]["port"].as_str(),
                Some("ops"),
                "{deployment}"
            );
        }
        let secret_ref = c["envFrom"][0]["secretRef"]["name"].as_str();
        assert_eq!(
            secret_ref,
            Some("drumbeat-urls"),
            "{deployment}: URLs from the Secret"
        );
        let env = format!("{:?}", c["env"]);
        assert!(
            !env.contains("://"),
            "{deployment}: no URL in plain env: {env}"
        );
        assert_eq!(
            spec["volumes"][0]["configMap"]["name"].as_str(),
            Some("drumbeat-config")
        );
        assert_eq!(
            c["volumeMounts"][0]["mountPath"].as_str(),
            Some("/etc/drumbeat")
        );
        let pdb = get(&m, &format!("PodDisruptionBudget/{deployment}"));
        assert_eq!(
            &pdb["spec"]["selector"]["matchLabels"], labels,
            "{deployment}: the PodDisruptionBudget selects its pods"
        );
    }

    let grace = pod_spec(&m, "drumbeat-worker")["terminationGracePeriodSeconds"]
        .as_u64()
        .expect("worker terminationGracePeriodSeconds");
    assert!(
        grace > s.worker.drain_timeout.as_secs(),
        "worker grace {grace}s must exceed drain_timeout {:?}",
        s.worker.drain_timeout
    );

    let text = std::fs::read_to_string(dir().join("configmap.yaml")).unwrap();
    assert!(!text.contains('@'), "no credentials in the ConfigMap");
    let secret = &get(&m, "Secret/drumbeat-urls")["stringData"];
    for (k, v) in secret.as_mapping().unwrap() {
        assert!(
            v.as_str().unwrap().contains("CHANGE-ME"),
            "{k:?}: the committed Secret holds only placeholders"
        );
    }
    println!("deploy/kubernetes: {} objects fit together", m.len());
}
