-- SVP: the service and vendor platform. Clients, assets, contracts, incidents, attachments and
-- service visits: the same business as QVP's customers/vehicles/policies/claims/documents, modelled
-- differently (text keys, uuids, json instead of jsonb, separate schema, intervals, floats).
CREATE SCHEMA svp;
CREATE TYPE svp.contract_state AS ENUM ('DRAFT', 'RUNNING', 'SUSPENDED', 'ENDED');

CREATE TABLE svp.clients (
    client_no     varchar(12) PRIMARY KEY,
    full_name     varchar(200) NOT NULL,
    email_address varchar(320),
    mobile        varchar(40),
    date_of_birth timestamp without time zone,
    registered    timestamptz NOT NULL,
    segment       char(1),
    attributes    json
);

CREATE TABLE svp.assets (
    asset_id   integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    client_no  varchar(12) NOT NULL REFERENCES svp.clients,
    vin        text,
    label      text NOT NULL,
    build_year integer,
    odometer   numeric(10,1),
    checksums  bytea[]
);

CREATE TABLE svp.contracts (
    contract_id  uuid PRIMARY KEY,
    client_no    varchar(12) NOT NULL REFERENCES svp.clients,
    asset_id     integer REFERENCES svp.assets,
    state        svp.contract_state NOT NULL,
    monthly_fee  double precision,
    starts_on    date NOT NULL,
    ends_on      date,
    terms        text,
    options      jsonb
);

CREATE TABLE svp.incidents (
    incident_id   bigint PRIMARY KEY,
    contract_id   uuid NOT NULL REFERENCES svp.contracts,
    occurred      timestamptz NOT NULL,
    cost_estimate numeric,
    severity      smallint,
    report        text,
    geo           double precision[]
);

CREATE TABLE svp.attachments (
    contract_id   uuid NOT NULL REFERENCES svp.contracts,
    seq           integer NOT NULL,
    name          text NOT NULL,
    bucket_object text NOT NULL,
    size_bytes    bigint,
    sha1          bytea,
    PRIMARY KEY (contract_id, seq)
);

CREATE TABLE svp.service_visits (
    visit_id   bigserial PRIMARY KEY,
    asset_id   integer NOT NULL REFERENCES svp.assets,
    visited_on date NOT NULL,
    duration   interval,
    parts      text[],
    notes      text
);
