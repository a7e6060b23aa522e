-- A notice is claimed before SES is called: a SENDING row names its claimant and the claim time,
-- committed on its own, and becomes SENT with SES's message id once SES accepted the mail. Rows
-- written before this migration were written after SES accepted their mail: they are SENT, and a
-- row written without a status still means a sent notice. sent_at stays empty while SENDING.
-- widens: notifications.sent_at (NOT NULL to NULL, same default)
ALTER TABLE notifications
  ADD COLUMN status ENUM('SENDING','SENT') NOT NULL DEFAULT 'SENT' AFTER kind,
  ADD COLUMN claimant VARCHAR(128) NULL AFTER message_id,
  ADD COLUMN claimed_at TIMESTAMP(3) NULL AFTER claimant,
  MODIFY sent_at TIMESTAMP(3) NULL DEFAULT CURRENT_TIMESTAMP(3),
  ADD CONSTRAINT ck_notifications_claim CHECK (
    (status = 'SENT' AND sent_at IS NOT NULL)
    OR (status = 'SENDING' AND sent_at IS NULL AND claimant IS NOT NULL AND claimed_at IS NOT NULL)
  );
