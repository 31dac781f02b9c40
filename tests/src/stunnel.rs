//! A private `stunnel4` TLS terminator in front of a plain TCP service (the shared RabbitMQ),
//! for the `amqps://` tests (docs/design.md §14): it listens on a free port with a test
//! server certificate and forwards the decrypted stream. Optionally it asks for and verifies a
//! client certificate. Runs in the foreground as a child process, killed and its directory
//! removed on drop, even when the test panics.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::free_port;
use crate::tls::Issued;

/// One stunnel process and its private directory.
pub struct Stunnel {
    /// The TLS port on 127.0.0.1.
    pub port: u16,
    dir: PathBuf,
    child: Child,
}

/// The stunnel binary (Debian's `stunnel4` package installs both names).
fn binary() -> &'static str {
    if Path::new("/usr/bin/stunnel4").exists() {
        "/usr/bin/stunnel4"
    } else {
        "stunnel"
    }
}

impl Stunnel {
    /// TLS on a free port with `server`'s certificate, forwarding to `127.0.0.1:{target}`.
    /// With `client_ca`, a client certificate signed by that CA is required.
    pub fn start(server: &Issued, target: u16, client_ca: Option<&Path>) -> Self {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!(
            "drumbeat-stunnel-{port}-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let verify = match client_ca {
            Some(ca) => format!(
                "verifyChain = yes\nrequireCert = yes\nCAfile = {}\n",
                ca.display()
            ),
            None => String::new(),
        };
        let conf = format!(
            "foreground = yes\npid =\ndebug = notice\noutput = {log}\n\n[amqps]\n\
             accept = 127.0.0.1:{port}\nconnect = 127.0.0.1:{target}\n\
             cert = {cert}\nkey = {key}\n{verify}",
            log = dir.join("stunnel.log").display(),
            cert = server.cert_file.display(),
            key = server.key_file.display(),
        );
        let conf_file = dir.join("stunnel.conf");
        std::fs::write(&conf_file, conf).unwrap();
        let child = Command::new(binary())
            .arg(&conf_file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run stunnel4 (Debian package stunnel4, installed by scripts/services.sh)");
        let mut s = Self { port, dir, child };
        s.wait_listening(Duration::from_secs(20));
        s
    }

    fn wait_listening(&mut self, deadline: Duration) {
        let start = Instant::now();
        while start.elapsed() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("stunnel exited at start ({status}):\n{}", self.log());
            }
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("stunnel not listening after {deadline:?}:\n{}", self.log());
    }

    /// stunnel's own log (handshake failures on its side show here).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("stunnel.log")).unwrap_or_default()
    }
}

impl Drop for Stunnel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::env::var_os("DRUMBEAT_KEEP_TEST_DIRS").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
