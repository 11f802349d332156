//! Reading what the server sent: every test server writes its messages
//! somewhere a test can read them, and `wait_for_mail` finds one.
//!
//! Transport: `.eml` files in the data directory by default (the service's
//! own no-SMTP default); `PORTCULLIS_TEST_MAIL=smtp` gives every test server
//! a real SMTP server of its own instead, aiosmtpd on a free port writing to
//! a Maildir (`python3 -m aiosmtpd`, pinned in CI), and the same tests read
//! the Maildir.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mail_parser::MessageParser;

use super::TestApp;

/// The public URL every test server builds its links from: not the
/// server's own address, so a test sees that links never come from a
/// request's `Host`.
pub const PUBLIC_URL: &str = "https://auth.portcullis.test";

/// Whether test servers deliver over SMTP.
pub fn use_smtp() -> bool {
    std::env::var("PORTCULLIS_TEST_MAIL").is_ok_and(|m| m.eq_ignore_ascii_case("smtp"))
}

/// A message as the recipient reads it.
#[derive(Debug, Clone)]
pub struct ReceivedMail {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
    /// The raw message, as written or received.
    pub raw: String,
}

impl ReceivedMail {
    /// The token of the link to `/account/<page>` in the plain-text part;
    /// asserts the link starts with [`PUBLIC_URL`].
    pub fn link_token(&self, page: &str) -> String {
        let marker = format!("/account/{page}#token=");
        let at = self
            .text
            .find(&marker)
            .unwrap_or_else(|| panic!("no {marker} link in: {}", self.text));
        let start = self.text[..at]
            .rfind(char::is_whitespace)
            .map_or(0, |i| i + 1);
        let link: String = self.text[start..]
            .chars()
            .take_while(|c| !c.is_whitespace())
            .collect();
        assert!(
            link.starts_with(&format!("{PUBLIC_URL}/account/")),
            "a link not built from the public URL: {link}"
        );
        let token = link.rsplit("#token=").next().unwrap().to_owned();
        assert_eq!(token.len(), 43, "{link}");
        assert!(self.html.contains(&link), "the HTML part has the same link");
        token
    }
}

/// An aiosmtpd process on a free port, writing to a Maildir; killed on drop.
pub struct SmtpServer {
    pub port: u16,
    pub maildir: PathBuf,
    child: Child,
}

impl SmtpServer {
    /// Starts one on a free port.
    pub fn start(maildir: &Path) -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        Self::start_on(port, maildir)
    }

    /// Starts one on `port` (after an outage, the same port again).
    pub fn start_on(port: u16, maildir: &Path) -> Self {
        for sub in ["cur", "new", "tmp"] {
            std::fs::create_dir_all(maildir.join(sub)).unwrap();
        }
        let child = Command::new("python3")
            .args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{port}"))
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(maildir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 -m aiosmtpd must run (pip install aiosmtpd==1.4.6)");
        let server = Self {
            port,
            maildir: maildir.to_path_buf(),
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "aiosmtpd never listened on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    /// lettre's URL of this server (plain SMTP on loopback).
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every message in `dir` (an `.eml` directory or a Maildir's `new`/`cur`),
/// oldest first.
pub fn read_all(dir: &Path) -> Vec<ReceivedMail> {
    let mut files = Vec::new();
    for sub in [dir.to_path_buf(), dir.join("new"), dir.join("cur")] {
        if let Ok(entries) = std::fs::read_dir(&sub) {
            for entry in entries.flatten() {
                let path = entry.path();
                if path.is_file() {
                    files.push(path);
                }
            }
        }
    }
    // Oldest first: `.eml` names are random, so order by when each was written.
    files.sort_by_key(|path| {
        let written = std::fs::metadata(path).and_then(|m| m.modified()).ok();
        (written, path.clone())
    });
    files
        .into_iter()
        .filter_map(|path| std::fs::read(path).ok())
        .filter_map(|raw| parse(&raw))
        .collect()
}

fn parse(raw: &[u8]) -> Option<ReceivedMail> {
    let message = MessageParser::default().parse(raw)?;
    let to = message.to()?.first()?.address()?.to_owned();
    Some(ReceivedMail {
        to,
        subject: message.subject()?.to_owned(),
        text: message.body_text(0)?.into_owned(),
        html: message.body_html(0)?.into_owned(),
        raw: String::from_utf8_lossy(raw).into_owned(),
    })
}

impl TestApp {
    /// Where this server's messages land.
    pub fn mail_dir(&self) -> PathBuf {
        match &self.smtp {
            Some(smtp) => smtp.maildir.clone(),
            None => self.data_dir.join("mail"),
        }
    }

    /// Every message this server has delivered so far.
    pub fn mails(&self) -> Vec<ReceivedMail> {
        read_all(&self.mail_dir())
    }

    /// Messages to `to` whose subject contains `subject`.
    pub fn mails_to(&self, to: &str, subject: &str) -> Vec<ReceivedMail> {
        self.mails()
            .into_iter()
            .filter(|m| m.to.eq_ignore_ascii_case(to) && m.subject.contains(subject))
            .collect()
    }

    /// Waits (up to 20 s) until `count` messages to `to` with `subject`
    /// have arrived; returns them, oldest first.
    pub async fn wait_for_mails(&self, to: &str, subject: &str, count: usize) -> Vec<ReceivedMail> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let found = self.mails_to(to, subject);
            if found.len() >= count {
                return found;
            }
            assert!(
                Instant::now() < deadline,
                "{count} message(s) to {to} about {subject:?} never arrived; have {:?}",
                self.mails()
                    .iter()
                    .map(|m| (&m.to, &m.subject))
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits for the first message to `to` with `subject`.
    pub async fn wait_for_mail(&self, to: &str, subject: &str) -> ReceivedMail {
        self.wait_for_mails(to, subject, 1).await.remove(0)
    }

    /// The token of the latest link to `page` sent to `to` with `subject`,
    /// once `count` such messages have arrived.
    pub async fn link_token(&self, to: &str, subject: &str, page: &str, count: usize) -> String {
        let mails = self.wait_for_mails(to, subject, count).await;
        mails[count - 1].link_token(page)
    }
}
