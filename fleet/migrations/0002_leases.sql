-- 0002: leases of the fleet budget (SPEC section 14).

-- A lease is a claim: the host's lifetime usage of the provider may reach
-- ceiling. What it reserves of the fleet is ceiling less what the host has
-- shipped (fleet_host_usage), never less than 0: the host's unshipped
-- usage and what it may still spend. A grant, a renewal and a return are
-- one transaction under a per-provider advisory lock that checks every
-- window of the fleet limit. expires_at is when the host stops spending
-- from it at the latest (it stops earlier, on its own clock); an expired
-- lease is not deleted: it keeps reserving its rest until its host ships
-- past it or renews or returns it, so the fleet limit holds whatever
-- happened to the host.
CREATE TABLE fleet_leases (
	host       text        NOT NULL,
	provider   text        NOT NULL,
	ceiling    bigint      NOT NULL CHECK (ceiling >= 0),
	granted_at timestamptz NOT NULL,
	expires_at timestamptz NOT NULL,
	PRIMARY KEY (host, provider)
);
