//! Email delivery: rendering the outbox's messages with the templates and
//! handing them to SMTP (lettre over tokio and rustls) or, with no SMTP URL,
//! writing each as an `.eml` file under the data directory.
//!
//! [`Mailer::deliver_due`] is one pass of the delivery worker: claim the
//! due messages, send each, and record the result (sent and scrubbed; a
//! retry with exponential back-off; given up on a permanent refusal;
//! expired with its token). No token ever reaches a log: messages are
//! logged by id and kind only.

mod templates;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use portcullis_domain::mail::{Mail, MailKind};
use secrecy::{ExposeSecret, SecretString};
use time::OffsetDateTime;
use tracing::Instrument as _;

pub use templates::{Rendered, Templates, Values};

use crate::db::{Claimed, SeaOrmOutbox};

/// How long an SMTP conversation may take.
const SMTP_TIMEOUT: Duration = Duration::from_secs(15);
/// Messages claimed per pass.
const BATCH: u64 = 32;
/// A claimed message is left alone by other instances this long.
const LEASE: time::Duration = time::Duration::minutes(2);
/// The first retry waits this long; each next one twice as long.
const FIRST_RETRY: time::Duration = time::Duration::seconds(5);
/// The longest wait between two attempts.
const MAX_RETRY: time::Duration = time::Duration::minutes(30);

/// What the mailer needs to know.
#[derive(Clone)]
pub struct MailConfig {
    /// lettre's URL form (`smtp://`, `smtp://...?tls=required`, `smtps://`),
    /// credentials included: a secret. `None`: write `.eml` files.
    pub smtp_url: Option<SecretString>,
    /// The `From:` mailbox, e.g. `Portcullis <no-reply@example.com>`.
    pub from: String,
    /// Links start with it (never with a request's `Host`).
    pub public_url: String,
    /// Where `.eml` files go without SMTP.
    pub mail_dir: PathBuf,
    /// Replacement templates, if any.
    pub templates_dir: Option<PathBuf>,
    /// The name messages give the service.
    pub service_name: String,
}

enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Files(AsyncFileTransport<Tokio1Executor>, PathBuf),
}

/// The result of one delivery pass.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeliveryReport {
    pub sent: u64,
    pub retried: u64,
    pub failed: u64,
}

/// Why one message was not delivered.
struct NotSent {
    /// The server refused it for good (5xx): retrying would not help.
    permanent: bool,
    /// Safe to store and log: no message content.
    reason: String,
}

/// Renders and delivers the outbox's messages.
pub struct Mailer {
    transport: Transport,
    from: Mailbox,
    public_url: String,
    service_name: String,
    templates: Templates,
}

impl Mailer {
    /// Builds the mailer: parses the SMTP URL and the sender, loads the
    /// templates, creates the mail directory (0700) when writing files.
    ///
    /// # Errors
    /// A bad URL, sender or template, or a directory that cannot be made.
    /// Call it inside the tokio runtime: lettre's SMTP pool starts a task.
    pub fn new(config: &MailConfig) -> anyhow::Result<Self> {
        let from: Mailbox = config
            .from
            .parse()
            .context("PORTCULLIS_MAIL_FROM is not a valid mailbox")?;
        let transport = match &config.smtp_url {
            Some(url) => Transport::Smtp(
                AsyncSmtpTransport::<Tokio1Executor>::from_url(url.expose_secret())
                    // The URL may hold a password: never in the error.
                    .map_err(|_| {
                        anyhow::anyhow!(
                            "PORTCULLIS_SMTP_URL is not a valid SMTP URL \
                             (smtp://host:port, smtp://host:587?tls=required, smtps://user:pass@host:465)"
                        )
                    })?
                    .timeout(Some(SMTP_TIMEOUT))
                    .build(),
            ),
            None => {
                create_private_dir(&config.mail_dir)?;
                Transport::Files(
                    AsyncFileTransport::<Tokio1Executor>::new(&config.mail_dir),
                    config.mail_dir.clone(),
                )
            }
        };
        Ok(Self {
            transport,
            from,
            public_url: config.public_url.trim_end_matches('/').to_owned(),
            service_name: config.service_name.clone(),
            templates: Templates::load(config.templates_dir.as_deref())?,
        })
    }

    /// Where messages go, for the start-up log (no credentials).
    pub fn describe(&self) -> String {
        match &self.transport {
            Transport::Smtp(_) => "SMTP (PORTCULLIS_SMTP_URL)".to_owned(),
            Transport::Files(_, dir) => format!(".eml files in {}", dir.display()),
        }
    }

    /// The link a message of `kind` carries for `token`.
    pub fn link(&self, kind: MailKind, token: &str) -> Option<String> {
        let page = match kind {
            MailKind::VerifyEmail | MailKind::ConfirmEmailChange => "verify-email",
            MailKind::ResetPassword => "reset-password",
            _ => return None,
        };
        Some(format!("{}/account/{page}#token={token}", self.public_url))
    }

    /// The message `mail` becomes.
    ///
    /// # Errors
    /// A recipient that is not a valid mailbox.
    pub fn compose(&self, mail: &Mail) -> anyhow::Result<Message> {
        let link = mail
            .token
            .as_ref()
            .and_then(|token| self.link(mail.kind, token.expose()))
            .unwrap_or_default();
        let rendered = self.templates.render(
            mail.kind,
            &Values {
                service: &self.service_name,
                email: mail.to.as_str(),
                new_email: mail.new_email.as_ref().map_or("", |e| e.as_str()),
                link: &link,
            },
        );
        let to: Mailbox = mail
            .to
            .as_str()
            .parse()
            .context("the recipient is not a valid mailbox")?;
        Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(rendered.subject)
            .multipart(MultiPart::alternative_plain_html(
                rendered.text,
                rendered.html,
            ))
            .context("building the message")
    }

    /// One pass: delivers every message due at `now` (up to a batch).
    ///
    /// # Errors
    /// When the outbox cannot be read; failures of single messages are
    /// recorded on them instead.
    pub async fn deliver_due(
        &self,
        outbox: &SeaOrmOutbox,
        now: OffsetDateTime,
    ) -> anyhow::Result<DeliveryReport> {
        let mut report = DeliveryReport::default();
        for claimed in outbox.claim(now, LEASE, BATCH).await? {
            let span = tracing::info_span!(
                "mail.deliver",
                message_id = %claimed.id,
                kind = claimed.mail.kind.as_str(),
                attempt = claimed.attempts + 1,
                outcome = tracing::field::Empty,
            );
            let outcome = async {
                anyhow::Ok(match self.deliver(&claimed).await {
                Ok(()) => {
                    outbox.sent(claimed.id, OffsetDateTime::now_utc()).await?;
                    report.sent += 1;
                    "sent"
                }
                Err(not_sent) if not_sent.permanent => {
                    tracing::warn!(reason = %not_sent.reason, "mail refused for good; giving up");
                    outbox.failed(claimed.id, &not_sent.reason).await?;
                    report.failed += 1;
                    "failed"
                }
                Err(not_sent) => {
                    let attempts = claimed.attempts + 1;
                    let retry_at = OffsetDateTime::now_utc() + backoff(attempts);
                    tracing::warn!(reason = %not_sent.reason, %retry_at, "mail not delivered; will retry");
                    outbox
                        .retry(claimed.id, attempts, retry_at, &not_sent.reason)
                        .await?;
                    report.retried += 1;
                    "retried"
                }
            })
            }
            .instrument(span.clone())
            .await?;
            span.record("outcome", outcome);
        }
        Ok(report)
    }

    async fn deliver(&self, claimed: &Claimed) -> Result<(), NotSent> {
        let message = self.compose(&claimed.mail).map_err(|error| NotSent {
            permanent: true,
            reason: format!("{error:#}"),
        })?;
        match &self.transport {
            Transport::Smtp(smtp) => smtp.send(message).await.map(drop).map_err(|error| NotSent {
                permanent: error.is_permanent(),
                reason: smtp_reason(&error),
            }),
            Transport::Files(files, dir) => match files.send(message).await {
                Ok(id) => {
                    tracing::info!(file = %dir.join(format!("{id}.eml")).display(), "mail written to a file");
                    Ok(())
                }
                Err(error) => Err(NotSent {
                    permanent: false,
                    reason: format!("writing the .eml file: {error}"),
                }),
            },
        }
    }
}

/// The wait before attempt `attempts + 1`: 5 s, 10 s, 20 s, ... up to 30 min.
fn backoff(attempts: u32) -> time::Duration {
    let factor = 1_i32 << attempts.saturating_sub(1).min(12);
    (FIRST_RETRY * factor).min(MAX_RETRY)
}

/// An SMTP error's kind and code, without anything the message said.
fn smtp_reason(error: &lettre::transport::smtp::Error) -> String {
    let code = error
        .status()
        .map_or_else(String::new, |code| format!(" {code}"));
    let kind = if error.is_permanent() {
        "permanent refusal"
    } else if error.is_transient() {
        "transient refusal"
    } else if error.is_timeout() {
        "timeout"
    } else {
        "connection or protocol error"
    };
    format!("SMTP {kind}{code}")
}

fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating the mail directory {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use portcullis_domain::email::Email;
    use portcullis_domain::ids::UserId;
    use portcullis_domain::one_time::OneTimeToken;

    use super::*;

    fn config(smtp_url: Option<&str>, dir: &Path) -> MailConfig {
        MailConfig {
            smtp_url: smtp_url.map(|url| SecretString::from(url.to_owned())),
            from: "Portcullis <no-reply@example.com>".to_owned(),
            public_url: "https://auth.example.com/".to_owned(),
            mail_dir: dir.join("mail"),
            templates_dir: None,
            service_name: "Portcullis".to_owned(),
        }
    }

    // lettre's SMTP pool starts a task when it is built: inside a runtime.
    #[tokio::test]
    async fn the_three_smtp_url_forms_are_accepted_and_a_bad_one_is_refused_without_its_password() {
        let dir = tempfile::tempdir().unwrap();
        for url in [
            "smtp://127.0.0.1:25",
            "smtp://mail.example.com:587?tls=required",
            "smtps://user:pa55word@mail.example.com:465",
        ] {
            let mailer = Mailer::new(&config(Some(url), dir.path())).unwrap();
            assert!(!mailer.describe().contains("pa55word"));
        }
        let refused = Mailer::new(&config(Some("imap://user:pa55word@host"), dir.path()))
            .err()
            .unwrap();
        let shown = format!("{refused:#}");
        assert!(
            shown.contains("PORTCULLIS_SMTP_URL") && !shown.contains("pa55word"),
            "{shown}"
        );
        assert!(
            !dir.path().join("mail").exists(),
            "no mail directory with SMTP"
        );
    }

    #[test]
    fn without_smtp_messages_go_to_a_private_directory() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let mailer = Mailer::new(&config(None, dir.path())).unwrap();
        let mode = std::fs::metadata(dir.path().join("mail"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
        assert!(mailer.describe().contains(".eml files"));
    }

    #[test]
    fn links_come_from_the_public_url_and_carry_the_token_in_the_fragment() {
        let dir = tempfile::tempdir().unwrap();
        let mailer = Mailer::new(&config(None, dir.path())).unwrap();
        let token = "A".repeat(43);
        assert_eq!(
            mailer.link(MailKind::ResetPassword, &token).unwrap(),
            format!("https://auth.example.com/account/reset-password#token={token}")
        );
        assert_eq!(
            mailer.link(MailKind::ConfirmEmailChange, &token).unwrap(),
            format!("https://auth.example.com/account/verify-email#token={token}")
        );
        assert!(mailer.link(MailKind::PasswordChanged, &token).is_none());

        let mail = Mail::link(
            MailKind::VerifyEmail,
            UserId::new(),
            Email::parse("ann@example.com").unwrap(),
            OneTimeToken::from_generated(token.clone()),
            time::OffsetDateTime::now_utc(),
        );
        let message = String::from_utf8(mailer.compose(&mail).unwrap().formatted()).unwrap();
        assert!(message.contains("To: ann@example.com"), "{message}");
        assert!(message.contains("multipart/alternative"), "{message}");
        assert!(message.contains("text/plain") && message.contains("text/html"));
    }

    #[test]
    fn back_off_doubles_up_to_half_an_hour() {
        assert_eq!(backoff(1), time::Duration::seconds(5));
        assert_eq!(backoff(2), time::Duration::seconds(10));
        assert_eq!(backoff(3), time::Duration::seconds(20));
        assert_eq!(backoff(30), MAX_RETRY);
    }
}
