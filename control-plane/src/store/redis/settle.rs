//! Settlements (`settle.lua`), releasing a request's gauge holds (`release.lua`) and
//! taking back a refused request's check (`cancel.lua`).

use super::replies::{parse_count, parse_settle_reply};
use super::store::RedisStore;
use crate::store::call::COUNTER_MAX;
use crate::store::error::StoreError;
use crate::store::keys::{CHECK_RECORD_TTL_MS, MARKER_TTL_S, SETTLEMENT_ID_TTL_S};
use crate::store::settlement::{Cancelled, Change, SettleReply, Settlement};
use crate::store::validate::validate_settlement;

impl RedisStore {
    pub(super) async fn settle_counters(
        &self,
        settlement: &Settlement,
    ) -> Result<SettleReply, StoreError> {
        validate_settlement(settlement)?;
        let Settlement {
            id_key,
            markers,
            moves,
            release,
        } = settlement;
        let mut script = self.scripts.settle.prepare_invoke();
        for marker in markers {
            script.key(marker);
        }
        for m in moves {
            script.key(&m.key);
        }
        script.key(id_key);
        if let Some(release) = release {
            script.key(&release.record_key);
        }
        script
            .arg(markers.len())
            .arg(MARKER_TTL_S)
            .arg(moves.len())
            .arg(COUNTER_MAX)
            .arg(release.as_ref().map_or("", |r| r.request_id.as_str()))
            .arg(SETTLEMENT_ID_TTL_S);
        for m in moves {
            let (sign, amount) = match m.change {
                Change::Add(amount) => ("+", amount),
                Change::Refund(amount) => ("-", amount),
            };
            script
                .arg(sign)
                .arg(amount)
                .arg(m.ttl_s.max(1))
                .arg(m.marker.map_or(0, |i| i + 1));
        }
        let mut conn = self.conn.clone();
        let reply: Vec<String> = script.invoke_async(&mut conn).await?;
        parse_settle_reply(&reply, moves.len())
    }

    pub(super) async fn release_holds(
        &self,
        record_key: &str,
        request_id: &str,
    ) -> Result<u64, StoreError> {
        let mut conn = self.conn.clone();
        Ok(self
            .scripts
            .release
            .key(record_key)
            .arg(request_id)
            .invoke_async(&mut conn)
            .await?)
    }

    pub(super) async fn cancel_check(
        &self,
        lease_record: &str,
        check_record: &str,
        request_id: &str,
    ) -> Result<Cancelled, StoreError> {
        let mut conn = self.conn.clone();
        let reply: Vec<String> = self
            .scripts
            .cancel
            .key(lease_record)
            .key(check_record)
            .arg(request_id)
            .arg(CHECK_RECORD_TTL_MS)
            .invoke_async(&mut conn)
            .await?;
        match reply.as_slice() {
            [released, refunded, keys @ ..] => Ok(Cancelled {
                released: parse_count(released)?,
                refunded: parse_count(refunded)?,
                keys: keys.to_vec(),
            }),
            other => Err(StoreError::Protocol(format!("cancel replied {other:?}"))),
        }
    }
}
