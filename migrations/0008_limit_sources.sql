-- 0008: where each limit comes from (SPEC section 12: listing and removing
-- limits). Runtime limits of every scope are rows of budgets (before, the
-- daemon kept a bottle's and its agents' on the bottle's row, merged with
-- its registration); a bottle's row keeps its registration in budget and
-- agent_budgets, and what its containers' labels set in label_budget.
--
-- A bottle's budget as stored before cannot be split into what its
-- registration, its labels and an operator set: it is read as its
-- registration, which an operator can still remove or override. Bottle and
-- agent rows of budgets were never written by the daemon (it wrote only
-- the global scope's, and applied no other) and are dropped, so that none
-- comes into force now.
ALTER TABLE bottles ADD COLUMN label_budget TEXT NOT NULL DEFAULT '{}';
DELETE FROM budgets WHERE scope <> 'global';
