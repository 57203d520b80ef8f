"""Submission bundles: ``vat bundle`` packs one entry's judgments for one release; ``vat verify`` checks them.

A bundle (format 2) is a Hugging Face dataset folder, or a ``.tar.gz`` of one (:mod:`.files`):

- ``README.md``: the dataset card (licence, tags, the ``configs`` that point at the data, a citation);
- ``manifest.json``: release id and hash, entry, spec hashes, config, package versions, run list, every
  request key, the SHA-256 of the judgments file and of the card, and the metrics the submitter claims;
- ``data/judgments-00000-of-00001.parquet``: the raw rows, one per (run, condition, request key): the
  request (messages and item metadata) joined with the provider's response (text, rating, logprobs,
  tokens, latency).

``datasets.load_dataset(<bundle>)`` reads the judgments, and ``hf upload <repo> <bundle> --repo-type
dataset`` publishes the folder unchanged. A format-1 bundle (manifest.json beside judgments.parquet)
is read through the named migrations of :mod:`.migrate`, which the verdict records.

Verification trusts nothing in the bundle that it can recompute. It recompiles the release's plan for
the entry (runner.compile.plan), so membership, messages, item metadata and request keys are compared with
what the release *would* send; it re-parses every rating from the stored answer text and logprobs; and
it recomputes every metric from the raw rows in an in-memory DuckDB with the store's own schema, through
the same code as ``vat report`` (runner.store.states, runner.report.tables). What recomputation cannot catch — answer
texts invented wholesale, consistently — only asking the provider again can: ``replay=N`` re-sends N
requests through runner.execute.online and compares the ratings, and records the outcome in a sidecar
``verification.json`` (``<bundle>.verification.json`` beside an archive).

Replay samples by stratum (:func:`replay_sample`): half of the draws go to the rows that drive the
gain (items of the run's target value, pre and post), the rest to the others, and every stratum must
agree on its own, so a forgery of a few target-value rows cannot hide behind many honest ones
(docs/reliability.md gives the detection power). The sidecar is signed with an HMAC key only the
maintainer holds (``VAT_VERIFY_HMAC_KEY``): a record a submitter writes by hand, or one written
without the key, never shows as verified (:func:`read_sidecar`).

A bundle is untrusted input: its sizes, its JSON's depth and its columns' types are checked before
anything is computed from it (:mod:`.read`, :func:`.verify.read_judgments`), so a malformed bundle
fails verification with a reason instead of a traceback.

The package, one module per job (each imports only those listed before it):

- :mod:`.files`: the format, each format's file names, and the limits on untrusted input;
- :mod:`.release`: the release compiled for one entry, and the identity a bundle records of it;
- :mod:`.judgments`: judgment rows from a store, and back into an in-memory store for the metrics;
- :mod:`.card`: the dataset card; :mod:`.write`: ``vat bundle``;
- :mod:`.read`: untrusted input (archives, sizes, JSON depth); :mod:`.migrate`: the named migrations;
  :mod:`.load`: opening a bundle of any known format, and its manifest;
- :mod:`.verify`: every check and the verdict; :mod:`.replay`: re-asking the provider a sample;
- :mod:`.sidecar`: the signed verification record.

This front door re-exports their public names, so ``from runner.leaderboard.bundle import ...`` works
as it did when the package was one module.
"""

from __future__ import annotations

from runner.leaderboard.bundle.card import bundle_card
from runner.leaderboard.bundle.files import (
    BUNDLE_FORMAT,
    JUDGMENTS,
    LAYOUTS,
    MANIFEST,
    MAX_ARCHIVE_MEMBERS,
    MAX_JSON_DEPTH,
    MAX_MANIFEST_BYTES,
    MAX_MEMBER_BYTES,
    MAX_ROWS_FACTOR,
    SIDECAR,
    SPLIT,
)
from runner.leaderboard.bundle.judgments import (
    JUDGMENT_COLUMNS,
    JUDGMENTS_SQL,
    PLAN_FIELDS,
    in_memory_store,
    judgment_schema,
    judgments_from_store,
    metric_rows,
)
from runner.leaderboard.bundle.load import (
    manifest_and_migrations,
    open_bundle,
    read_manifest,
)
from runner.leaderboard.bundle.migrate import (
    BUNDLE_MIGRATIONS,
    BundleMigration,
    current_layout,
    migrate_manifest,
)
from runner.leaderboard.bundle.release import (
    Condition,
    ReleasePlan,
    compile_release,
    condition_config,
    entry_identity,
    release_config,
    spec_hashes,
)
from runner.leaderboard.bundle.replay import (
    STRATA,
    TARGET_SHARE,
    allocate,
    allowed_mismatches,
    detection_power,
    replay,
    replay_sample,
    strata,
)
from runner.leaderboard.bundle.sidecar import (
    HMAC_ENV,
    read_sidecar,
    sidecar_path,
    signing_key,
    write_sidecar,
)
from runner.leaderboard.bundle.verify import (
    CLAIMED_KEYS,
    TOLERANCE,
    Check,
    Verdict,
    check_card,
    check_identity,
    check_membership,
    check_metrics,
    check_rows,
    read_judgments,
    verify_folder,
)
from runner.leaderboard.bundle.write import (
    build_manifest,
    write_bundle,
)

__all__ = [
    "check_card",
    "migrate_manifest",
    "current_layout",
    "BundleMigration",
    "BUNDLE_MIGRATIONS",
    "manifest_and_migrations",
    "bundle_card",
    "SPLIT",
    "LAYOUTS",
    "BUNDLE_FORMAT",
    "CLAIMED_KEYS",
    "Check",
    "Condition",
    "HMAC_ENV",
    "JUDGMENTS",
    "JUDGMENTS_SQL",
    "JUDGMENT_COLUMNS",
    "MANIFEST",
    "MAX_ARCHIVE_MEMBERS",
    "MAX_JSON_DEPTH",
    "MAX_MANIFEST_BYTES",
    "MAX_MEMBER_BYTES",
    "MAX_ROWS_FACTOR",
    "PLAN_FIELDS",
    "ReleasePlan",
    "SIDECAR",
    "STRATA",
    "TARGET_SHARE",
    "TOLERANCE",
    "Verdict",
    "allocate",
    "allowed_mismatches",
    "build_manifest",
    "check_identity",
    "check_membership",
    "check_metrics",
    "check_rows",
    "compile_release",
    "condition_config",
    "detection_power",
    "entry_identity",
    "in_memory_store",
    "judgment_schema",
    "judgments_from_store",
    "metric_rows",
    "open_bundle",
    "read_judgments",
    "read_manifest",
    "read_sidecar",
    "release_config",
    "replay",
    "replay_sample",
    "sidecar_path",
    "signing_key",
    "spec_hashes",
    "strata",
    "verify_folder",
    "write_bundle",
    "write_sidecar",
]
