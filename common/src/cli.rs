//! Flags shared by `beat` and `worker` (docs/design.md §1).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::Settings;

/// `--config` and `--id`, flattened into each binary's clap parser.
#[derive(Debug, Clone, clap::Args)]
pub struct CommonArgs {
    /// Configuration file (TOML). Settings can be overridden with DRUMBEAT__SECTION__KEY.
    #[arg(
        long,
        env = "DRUMBEAT_CONFIG",
        hide_env_values = true,
        default_value = "./drumbeat.toml",
        global = true
    )]
    pub config: PathBuf,
    /// Name of this process in the lease and logs; default hostname-pid.
    #[arg(long, global = true)]
    pub id: Option<String>,
}

impl CommonArgs {
    /// Whether the file was named explicitly (then it must exist).
    pub fn config_required(&self) -> bool {
        std::env::var_os("DRUMBEAT_CONFIG").is_some()
            || self.config != std::path::Path::new("./drumbeat.toml")
    }

    /// The process ID: `--id` or `hostname-pid`.
    pub fn process_id(&self) -> String {
        self.id.clone().unwrap_or_else(|| {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_string())
                .unwrap_or_else(|_| "host".into());
            format!("{host}-{}", std::process::id())
        })
    }
}

/// Loads and validates the settings named by `args`; on failure prints
/// `{bin}: bad config: {field.path}: {what}` to stderr and returns exit code 2 (docs/design.md §1).
pub fn load_settings(bin: &str, args: &CommonArgs) -> Result<Settings, ExitCode> {
    Settings::load(&args.config, args.config_required()).map_err(|e| {
        eprintln!("{bin}: bad config: {e}");
        ExitCode::from(2)
    })
}

/// Writes `text` to stdout; a closed pipe (`beat check | head`) is not an error.
pub fn print_stdout(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}
