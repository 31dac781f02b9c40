//! Where tokens come from (docs/design.md §14): `[ops] tokens`, `DRUMBEAT__OPS__TOKENS__<NAME>`
//! and `ops.tokens_file`; a bad one stops `beat check` with exit 2 naming the field and never
//! the token; the summary shows names only.

use std::process::Command;

use drumbeat_tests::{bin_path, free_port, TestNs};

use super::support::*;

/// `beat --config CFG check` with `envs`: exit code, stdout, stderr.
fn check(cfg: &std::path::Path, envs: &[(&str, &str)]) -> (i32, String, String) {
    let out = Command::new(bin_path("beat"))
        .args(["--config", cfg.to_str().unwrap(), "check"])
        .envs(envs.iter().copied())
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn env_and_file_tokens_authenticate_under_their_names() {
    let ns = TestNs::new("apitoksrc");
    let carol = "carol-env-token-1234567890";
    let dave = "dave-file-token-0987654321";
    let file = ns.dir.join("tokens.txt");
    std::fs::write(&file, format!("# operators\n\ndave:{dave}\n")).unwrap();
    let ops = format!(
        "tokens = {{ alice = \"{ALICE}\" }}\ntokens_file = \"{}\"",
        file.display()
    );
    // The variable's name part is lower-cased: CAROL is `carol`; a variable also replaces the
    // file's token of the same name (ALICE here), like every other override.
    let envs = [
        ("DRUMBEAT__OPS__TOKENS__CAROL", carol),
        ("DRUMBEAT__OPS__TOKENS__ALICE", BOB),
    ];
    let beat = ApiBeat::start(&ns, &ops, &envs).await;
    for (token, ok) in [(carol, true), (dave, true), (BOB, true), (ALICE, false)] {
        let r = beat.call("GET", "/status", Some(token), "").await;
        assert_eq!(r.status == 200, ok, "{token}: {r:?}");
    }
    // The name is the actor: a purge of everything (nothing there) is audited under it.
    let r = beat
        .call(
            "POST",
            "/api/v1/dlq/purge",
            Some(dave),
            r#"{"all": true, "note": "tidy"}"#,
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["purged"], 0);
    let entries = audit_entries(&ns).await;
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(
        entries[0].get("by").map(String::as_str),
        Some("dave"),
        "{entries:?}"
    );
    assert_eq!(entries[0].get("action").map(String::as_str), Some("purge"));
    assert_eq!(entries[0].get("note").map(String::as_str), Some("tidy"));
    let (code, out, err) = check(&beat.cfg, &envs);
    assert_eq!(code, 0, "{err}");
    for name in ["alice", "carol", "dave"] {
        assert!(
            out.contains(&format!("\"{name}\"")),
            "{name} not shown:\n{out}"
        );
    }
    let log = beat.log();
    for t in [ALICE, BOB, carol, dave] {
        assert!(
            !out.contains(t) && !err.contains(t),
            "token in check output"
        );
        assert!(!log.contains(t), "token in the log:\n{log}");
    }
}

#[tokio::test]
async fn a_bad_token_config_is_exit_2_naming_the_field_never_the_token() {
    let ns = TestNs::new("apitokbad");
    let port = free_port();
    let file = ns.dir.join("tokens.txt");
    std::fs::write(
        &file,
        "ok-name:ok-token-0123456789abc\nbroken-line-s3cr3tvalue\n",
    )
    .unwrap();
    let shortfile = ns.dir.join("short.txt");
    std::fs::write(&shortfile, "# x\neve:sh0rtsecret\n").unwrap();
    // (the [ops] text, the environment, the field the error must name, text it must not show)
    type Case<'a> = (String, Vec<(&'a str, &'a str)>, &'a str, &'a str);
    let cases: Vec<Case<'_>> = vec![
        (
            "tokens = { alice = \"sh0rtsecret\" }".into(),
            vec![],
            "ops.tokens.alice",
            "sh0rtsecret",
        ),
        (
            "tokens = { alice = 1234567890123456789 }".into(),
            vec![],
            "ops.tokens.alice",
            "1234567890123456789",
        ),
        (
            format!("tokens = {{ \"bad name\" = \"{ALICE}\" }}"),
            vec![],
            "ops.tokens.bad name",
            ALICE,
        ),
        (
            format!("tokens = {{ alice = \"{ALICE}\", bob = \"{ALICE}\" }}"),
            vec![],
            "ops.tokens.bob",
            ALICE,
        ),
        (
            format!("tokens_file = \"{}\"", file.display()),
            vec![],
            "ops.tokens_file: line 2",
            "s3cr3tvalue",
        ),
        (
            format!("tokens_file = \"{}\"", shortfile.display()),
            vec![],
            "ops.tokens_file: line 2",
            "sh0rtsecret",
        ),
        (
            format!("tokens_file = \"{}\"", ns.dir.join("missing.txt").display()),
            vec![],
            "ops.tokens_file",
            "zzzz-never",
        ),
        (
            String::new(),
            vec![("DRUMBEAT__OPS__TOKENS__EVE", "sh0rtsecret")],
            "ops.tokens.eve",
            "sh0rtsecret",
        ),
        ("tokenz = 1".into(), vec![], "tokenz", "zzzz-never"),
    ];
    for (ops, envs, field, secret) in cases {
        let cfg = ns.config_file("bad.toml", &api_toml(port, &ops));
        let (code, out, err) = check(&cfg, &envs);
        assert_eq!(code, 2, "{ops}: exit {code}\n{out}\n{err}");
        assert!(err.contains(field), "{ops}: `{err}` does not name {field}");
        assert!(
            !err.contains(secret) && !out.contains(secret),
            "{ops}: token shown: {err}"
        );
    }
    let (_, _, err) = check(
        &ns.config_file(
            "short.toml",
            &api_toml(port, "tokens = { a = \"sh0rtsecret\" }"),
        ),
        &[],
    );
    assert!(err.contains("at least 16 characters"), "{err}");
}
