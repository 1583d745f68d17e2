-- 0002: why a bottle is in its state, and whether an operator put it there
-- (an operator's cutoff is lifted only by an operator).
ALTER TABLE bottles ADD COLUMN state_reason TEXT NOT NULL DEFAULT '';
ALTER TABLE bottles ADD COLUMN by_operator INTEGER NOT NULL DEFAULT 0;
