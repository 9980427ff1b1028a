-- The demo catalog of Corvid Gateway 4.2 subscriptions: plans, add-ons and billing regions.
-- eval_sets/tools/build_catalog.py turns this file into catalog.sqlite; the SQL function tools
-- (functions.yaml) read it. Prices are list prices in US dollars unless a region says otherwise.
-- The Community and Team plans run the Community edition (clusters of at most 3 nodes); Business and
-- Enterprise run the Enterprise edition (CORVID_LICENSE_KEY; up to 32 nodes, RBAC roles, audit log).

CREATE TABLE plans (
    name TEXT PRIMARY KEY,
    edition TEXT NOT NULL,                  -- community | enterprise
    price_per_seat_month REAL NOT NULL,     -- USD per seat per month, billed monthly
    annual_discount_percent INTEGER NOT NULL,
    min_seats INTEGER NOT NULL,             -- fewer seats are billed as this many
    max_seats INTEGER,                      -- NULL: no limit
    included_requests_million INTEGER NOT NULL,  -- proxied requests per month included
    overage_per_million REAL,               -- USD per extra million requests; NULL: hard limit, no overage
    max_nodes INTEGER NOT NULL,
    support_level TEXT NOT NULL,
    support_response_hours INTEGER,         -- first response target; NULL: best effort
    sla_uptime_percent REAL                 -- NULL: no SLA
);

INSERT INTO plans VALUES
    ('Community',  'community',    0,  0,  1,    5,   10, NULL, 3, 'community forum',               NULL, NULL),
    ('Team',       'community',   29, 15,  3,   50,  100,  4.0, 3, 'email, business hours',           24, 99.5),
    ('Business',   'enterprise',  79, 15, 10,  250,  500,  3.0, 16, 'email and chat, 24x7',            8, 99.9),
    ('Enterprise', 'enterprise', 149, 20, 25, NULL, 2000,  2.0, 32, 'phone and named engineer, 24x7',  1, 99.95);

CREATE TABLE addons (
    name TEXT PRIMARY KEY,
    description TEXT NOT NULL,
    price REAL NOT NULL,                    -- USD
    unit TEXT NOT NULL,                     -- what the price is per
    min_plan TEXT NOT NULL REFERENCES plans(name)  -- the cheapest plan that may buy it
);

INSERT INTO addons VALUES
    ('Extra node',          'One more gateway node above the plan''s node limit (up to 32 in total)', 120, 'node per month', 'Business'),
    ('Audit log retention', 'Keeps the hash-chained audit log for 7 years instead of 1',              200, 'month',          'Business'),
    ('Premium support',     'Moves first response to 4 hours, 24x7, for Team plans',                  499, 'month',          'Team'),
    ('Onboarding',          'Two weeks of guided set-up with a Corvid Labs engineer',                2500, 'one-time',       'Team'),
    ('Stream partitions',   'A pack of 100 extra event-stream partitions',                             90, 'pack per month', 'Team'),
    ('Vault connector',     'HashiCorp Vault and AWS Secrets Manager secret providers',                150, 'month',          'Business');

CREATE TABLE regions (
    code TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    currency TEXT NOT NULL,
    usd_rate REAL NOT NULL,                 -- local currency per US dollar of list price
    vat_percent REAL NOT NULL,              -- tax added to invoices in this region
    support_hours TEXT NOT NULL             -- business hours of the regional support desk
);

INSERT INTO regions VALUES
    ('us', 'United States',  'USD',   1.0,   0, '08:00-18:00 America/New_York'),
    ('eu', 'European Union', 'EUR',   0.92, 21, '08:00-18:00 Europe/Amsterdam'),
    ('uk', 'United Kingdom', 'GBP',   0.79, 20, '08:00-18:00 Europe/London'),
    ('jp', 'Japan',          'JPY', 150.0,  10, '09:00-18:00 Asia/Tokyo'),
    ('in', 'India',          'INR',  83.0,  18, '09:30-18:30 Asia/Kolkata');
