//! TEMPORARY STUB — replaced by the real schedule module (helper is writing it).
#![allow(missing_docs)]
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum ScheduleError { #[error("bad: {0}")] Bad(String) }
#[derive(Debug, Clone, PartialEq)]
pub struct CronExpr(String);
impl CronExpr {
    pub fn parse(expr: &str) -> Result<CronExpr, ScheduleError> { Ok(CronExpr(expr.into())) }
    pub fn source(&self) -> &str { &self.0 }
    pub fn next_after(&self, _after: DateTime<Utc>, _tz: Tz) -> Option<DateTime<Utc>> { None }
}
#[derive(Debug, Clone, PartialEq)]
pub enum Trigger { Cron(CronExpr), Every(std::time::Duration), At(DateTime<Utc>) }
impl Trigger {
    pub fn every(d: std::time::Duration) -> Result<Trigger, ScheduleError> { Ok(Trigger::Every(d)) }
    pub fn next_after(&self, after: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
        match self {
            Trigger::Cron(c) => c.next_after(after, tz),
            Trigger::Every(d) => { let s = d.as_secs() as i64; let t = after.timestamp(); DateTime::from_timestamp((t.div_euclid(s) + 1) * s, 0) }
            Trigger::At(a) => (*a > after).then_some(*a),
        }
    }
}
