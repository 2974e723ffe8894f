//! `coordinator notify --run ID`: sends each customer's morning digest of a run (text and
//! HTML in one e-mail) over SMTP to the customer's `digest_recipients` (tenants file).
//!
//! The SMTP server comes from flags or `ACCESSFLOW_SMTP_*` variables; the password only
//! from `ACCESSFLOW_SMTP_PASSWORD` (never a flag, so it stays out of process listings). On
//! AWS, Amazon SES's SMTP interface is the server (`email-smtp.<region>.amazonaws.com`,
//! port 587, STARTTLS, SES SMTP credentials). Sent with `lettre` (blocking transport, off
//! the async threads): plain SMTP, STARTTLS or implicit TLS on rustls.

use std::time::Duration;

use accessflow_analysis::review::digest;
use accessflow_shared::config::Settings;
use anyhow::Context;
use clap::{Args, ValueEnum};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{Message, SmtpTransport, Transport};
use tracing::{info, warn};

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain SMTP, upgraded with STARTTLS (required): port 587, SES's default.
    Starttls,
    /// TLS from the first byte (SMTPS): port 465.
    Tls,
    /// No encryption at all: only for a relay on the same host or a test sink.
    None,
}

#[derive(Args, Debug)]
pub struct NotifyArgs {
    /// The run whose digest to send (default: the latest run).
    #[arg(long)]
    run: Option<String>,
    /// Only this customer.
    #[arg(long)]
    customer: Option<String>,
    /// Tenants file with each customer's `digest_recipients`.
    #[arg(long, env = "ACCESSFLOW_TENANTS")]
    tenants: Option<std::path::PathBuf>,
    /// Print the digests instead of sending them.
    #[arg(long)]
    dry_run: bool,
    /// SMTP server (on AWS: email-smtp.<region>.amazonaws.com).
    #[arg(long, env = "ACCESSFLOW_SMTP_HOST")]
    smtp_host: Option<String>,
    /// SMTP port (default: 587 with starttls, 465 with tls, 25 with none).
    #[arg(long, env = "ACCESSFLOW_SMTP_PORT")]
    smtp_port: Option<u16>,
    #[arg(long, env = "ACCESSFLOW_SMTP_TLS", value_enum, default_value_t = SmtpTls::Starttls)]
    smtp_tls: SmtpTls,
    /// SMTP user name; the password is read from ACCESSFLOW_SMTP_PASSWORD.
    #[arg(long, env = "ACCESSFLOW_SMTP_USER")]
    smtp_user: Option<String>,
    /// The sender address (on SES: a verified identity).
    #[arg(long, env = "ACCESSFLOW_MAIL_FROM")]
    mail_from: Option<String>,
}

/// Sends (or prints) the digests; returns how many e-mails were sent.
pub async fn notify(settings: &Settings, args: &NotifyArgs) -> anyhow::Result<usize> {
    let (ports, _) = crate::connect(settings).await?;
    let ledger = accessflow_shared::ledger::Ledger::new(ports.store.clone());
    let run_id = crate::status::resolve_run(&ledger, args.run.as_deref()).await?;
    let tenants = crate::tenants_source::load(settings, args.tenants.as_deref())?;
    let smtp = if args.dry_run {
        None
    } else {
        Some(Smtp::from_args(args)?)
    };
    let reviews = crate::review::load_or_build(&ports, &run_id).await?;
    let mut sent = 0;
    let mut without_recipients = Vec::new();
    for (customer, location, index) in reviews {
        if args.customer.as_deref().is_some_and(|c| c != customer) {
            continue;
        }
        let recipients = tenants
            .customers
            .iter()
            .find(|c| c.id == customer)
            .map(|c| c.digest_recipients.clone())
            .unwrap_or_default();
        let digest = digest::digest(&index, Some(&location));
        let Some(smtp) = &smtp else {
            say!(
                "To: {}\nSubject: {}\n\n{}",
                recipients.join(", "),
                digest.subject,
                digest.text
            );
            continue;
        };
        if recipients.is_empty() {
            warn!(
                customer,
                "no digest_recipients in the tenants file: digest not sent"
            );
            without_recipients.push(customer);
            continue;
        }
        let message = smtp.message(&customer, &recipients, &digest)?;
        let transport = smtp.transport()?;
        let server = smtp.describe();
        tokio::task::spawn_blocking(move || transport.send(&message))
            .await
            .context("sending the digest panicked")?
            .with_context(|| {
                format!("cannot send customer {customer}'s digest through {server}")
            })?;
        info!(customer, recipients = recipients.len(), run = %run_id, "digest sent");
        say!(
            "sent {customer}'s digest of run {run_id} to {}",
            recipients.join(", ")
        );
        sent += 1;
    }
    if smtp.is_some() && sent == 0 {
        anyhow::bail!(
            "no digest sent: no customer of run {run_id}{} has `digest_recipients` in the tenants file ({} without)",
            args.customer
                .as_deref()
                .map(|c| format!(" named {c}"))
                .unwrap_or_default(),
            without_recipients.join(", ")
        );
    }
    Ok(sent)
}

/// The SMTP server and sender, checked before anything is read or sent.
struct Smtp {
    host: String,
    port: u16,
    tls: SmtpTls,
    credentials: Option<Credentials>,
    from: Mailbox,
}

impl Smtp {
    fn from_args(args: &NotifyArgs) -> anyhow::Result<Smtp> {
        let host = args.smtp_host.clone().context(
            "no SMTP server: set --smtp-host or ACCESSFLOW_SMTP_HOST (on AWS, SES's SMTP endpoint email-smtp.<region>.amazonaws.com), or use --dry-run",
        )?;
        let from_text = args.mail_from.as_deref().context(
            "no sender: set --mail-from or ACCESSFLOW_MAIL_FROM (on SES, a verified identity)",
        )?;
        let from: Mailbox = from_text.parse().with_context(|| {
            format!("--mail-from / ACCESSFLOW_MAIL_FROM {from_text:?} is not an e-mail address")
        })?;
        let password = std::env::var("ACCESSFLOW_SMTP_PASSWORD").ok();
        let credentials = match (&args.smtp_user, password) {
            (Some(user), Some(password)) => Some(Credentials::new(user.clone(), password)),
            (Some(_), None) => anyhow::bail!(
                "--smtp-user / ACCESSFLOW_SMTP_USER is set but ACCESSFLOW_SMTP_PASSWORD is not"
            ),
            (None, Some(_)) => anyhow::bail!(
                "ACCESSFLOW_SMTP_PASSWORD is set but no user: set --smtp-user or ACCESSFLOW_SMTP_USER"
            ),
            (None, None) => None,
        };
        if credentials.is_some() && args.smtp_tls == SmtpTls::None {
            anyhow::bail!(
                "refusing to send SMTP credentials unencrypted: use --smtp-tls starttls or tls"
            );
        }
        let port = args.smtp_port.unwrap_or(match args.smtp_tls {
            SmtpTls::Starttls => 587,
            SmtpTls::Tls => 465,
            SmtpTls::None => 25,
        });
        Ok(Smtp {
            host,
            port,
            tls: args.smtp_tls,
            credentials,
            from,
        })
    }

    fn describe(&self) -> String {
        format!("{}:{} ({:?})", self.host, self.port, self.tls)
    }

    fn transport(&self) -> anyhow::Result<SmtpTransport> {
        let builder = match self.tls {
            SmtpTls::Starttls => SmtpTransport::starttls_relay(&self.host)
                .with_context(|| format!("SMTP server {}", self.describe()))?,
            SmtpTls::Tls => SmtpTransport::relay(&self.host)
                .with_context(|| format!("SMTP server {}", self.describe()))?,
            SmtpTls::None => SmtpTransport::builder_dangerous(&self.host),
        };
        let mut builder = builder
            .port(self.port)
            .timeout(Some(Duration::from_secs(30)));
        if let Some(credentials) = &self.credentials {
            builder = builder.credentials(credentials.clone());
        }
        Ok(builder.build())
    }

    fn message(
        &self,
        customer: &str,
        recipients: &[String],
        digest: &digest::Digest,
    ) -> anyhow::Result<Message> {
        let mut builder = Message::builder()
            .from(self.from.clone())
            .subject(digest.subject.clone());
        for address in recipients {
            let to: Mailbox = address.parse().with_context(|| {
                format!(
                    "customer {customer}'s digest recipient {address:?} is not an e-mail address"
                )
            })?;
            builder = builder.to(to);
        }
        builder
            .multipart(MultiPart::alternative_plain_html(
                digest.text.clone(),
                digest.html.clone(),
            ))
            .with_context(|| format!("cannot build customer {customer}'s digest e-mail"))
    }
}
