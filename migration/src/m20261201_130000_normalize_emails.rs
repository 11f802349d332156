//! Normalises stored emails to Unicode NFC, as `Email::parse` now does, so
//! an account made before the change is found by the address its owner
//! types. Data only; the schema is unchanged.
//!
//! It never merges, deletes or guesses: a row whose normalised address
//! another account already holds, or whose address holds a character
//! `Email::parse` now refuses (control, format or bidirectional control),
//! is left exactly as it is and reported in the log by user id (never by
//! address: ids are enough to find the rows, and addresses are personal
//! data). Such an account cannot be reached by log-in any more until an
//! operator resolves it; the report says so.
//!
//! Self-contained on purpose (a migration must not change when the domain
//! does): the normalisation and the refused characters are restated here.

use sea_orm::{ConnectionTrait, DbBackend, Statement, Value};
use sea_orm_migration::prelude::*;
use unicode_normalization::UnicodeNormalization;
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};
use uuid::Uuid;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    Email,
}

/// Rows read per statement.
const PAGE: u64 = 1_000;

/// Most ids named in the log for each kind of problem.
const LISTED: usize = 1_000;

/// What the migration did, for the log and for tests.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Report {
    pub(crate) normalised: u64,
    /// (the row left alone, the account that already has its address).
    pub(crate) collisions: Vec<(Uuid, Uuid)>,
    pub(crate) refused: Vec<Uuid>,
}

/// NFC, lowercase, NFC: what `Email::parse` stores (stored addresses are
/// already trimmed and lowercased).
fn normalise(stored: &str) -> String {
    stored
        .nfc()
        .collect::<String>()
        .to_lowercase()
        .nfc()
        .collect()
}

/// Whether `Email::parse` now refuses a character of `text`: control and
/// format characters (the bidirectional controls are format characters).
fn holds_refused_character(text: &str) -> bool {
    text.chars()
        .any(|c| c.is_control() || c.general_category() == GeneralCategory::Format)
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let report = normalise_all(manager.get_connection()).await?;
        log(&report);
        Ok(())
    }
}

async fn normalise_all<C: ConnectionTrait>(conn: &C) -> Result<Report, DbErr> {
    let backend = conn.get_database_backend();
    let mut report = Report::default();
    let mut after: Option<Uuid> = None;
    loop {
        let mut page = Query::select();
        page.columns([Users::Id, Users::Email])
            .from(Users::Table)
            .order_by(Users::Id, Order::Asc)
            .limit(PAGE);
        if let Some(last) = after {
            page.and_where(Expr::col(Users::Id).gt(last));
        }
        let rows = conn.query_all_raw(backend.build(&page)).await?;
        for row in &rows {
            let id: Uuid = row.try_get("", "id")?;
            let email: String = row.try_get("", "email")?;
            after = Some(id);
            if holds_refused_character(&email) {
                report.refused.push(id);
                continue;
            }
            let normalised = normalise(&email);
            if normalised == email {
                continue;
            }
            if let Some(holder) = holder_of(conn, backend, &normalised).await? {
                report.collisions.push((id, holder));
                continue;
            }
            let update = Query::update()
                .table(Users::Table)
                .value(Users::Email, normalised)
                .and_where(Expr::col(Users::Id).eq(id))
                .to_owned();
            conn.execute_raw(backend.build(&update)).await?;
            report.normalised += 1;
        }
        if (rows.len() as u64) < PAGE {
            return Ok(report);
        }
    }
}

/// The account that holds `email`, if any.
async fn holder_of<C: ConnectionTrait>(
    conn: &C,
    backend: DbBackend,
    email: &str,
) -> Result<Option<Uuid>, DbErr> {
    let query = Query::select()
        .column(Users::Id)
        .from(Users::Table)
        .and_where(Expr::col(Users::Email).eq(Value::from(email)))
        .limit(1)
        .to_owned();
    let statement: Statement = backend.build(&query);
    match conn.query_one_raw(statement).await? {
        Some(row) => Ok(Some(row.try_get("", "id")?)),
        None => Ok(None),
    }
}

fn log(report: &Report) {
    if report.normalised > 0 {
        tracing::info!(
            normalised = report.normalised,
            "stored emails normalised to Unicode NFC"
        );
    }
    if !report.collisions.is_empty() {
        tracing::warn!(
            accounts = report.collisions.len(),
            "emails NOT normalised: another account already holds the normalised address. \
             Both accounts are unchanged; log-in with that address reaches the other account. \
             Resolve each pair by hand (user_id is the row left alone, holder its look-alike)"
        );
        for (user_id, holder) in report.collisions.iter().take(LISTED) {
            tracing::warn!(%user_id, %holder, "email normalisation collision");
        }
    }
    if !report.refused.is_empty() {
        tracing::warn!(
            accounts = report.refused.len(),
            "emails NOT normalised: they hold a control, invisible format or bidirectional \
             character that sign-up now refuses. The accounts are unchanged and cannot log in \
             until their address is corrected by hand"
        );
        for user_id in report.refused.iter().take(LISTED) {
            tracing::warn!(%user_id, "email holds a refused character");
        }
    }
    let unlisted = report.collisions.len().saturating_sub(LISTED)
        + report.refused.len().saturating_sub(LISTED);
    if unlisted > 0 {
        tracing::warn!(unlisted, "more accounts need attention than were listed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation_matches_what_sign_up_stores() {
        assert_eq!(
            normalise("alie\u{301}ce@example.com"),
            "ali\u{e9}ce@example.com"
        );
        assert_eq!(
            normalise("ali\u{e9}ce@example.com"),
            "ali\u{e9}ce@example.com"
        );
        assert_eq!(normalise("\u{c9}ve@example.com"), "\u{e9}ve@example.com");
        assert!(holds_refused_character("alice\u{200b}@example.com"));
        assert!(holds_refused_character("\u{202e}evil@example.com"));
        assert!(holds_refused_character("a\u{1b}@example.com"));
        assert!(!holds_refused_character("ali\u{e9}ce@example.com"));
    }
}
