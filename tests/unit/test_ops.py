"""The pure parts of the operator commands: ids, selection for redrive, unsealing, lag and replay arithmetic,
and which topics each consumer group consumes."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest
from typer.testing import CliRunner

from deploy.cli import app
from deploy.ops import OpsError
from deploy.ops.deadletters import (
    LetterId,
    Listing,
    Redriven,
    SealedError,
    StoredLetter,
    latest,
    matches_source,
    original_value,
    readable,
    select_for_redrive,
)
from deploy.ops.groups import GROUP_INPUTS, SERVICE_GROUPS, GroupState, input_topics
from deploy.ops.lag import GroupLag, PartitionLag
from deploy.ops.replay import Reset, parse_time, replay_scope, replay_target
from deploy.ops.topics import PartitionInfo, TopicDescription, resolve
from services.intake.crypto import Purpose, Sealer
from shared.events import DeadLetter
from shared.settings import KafkaSettings
from shared.topics import (
    HOSPITAL_INBOUND,
    RECEIPTS,
    RESERVATIONS,
    STATS_SNAPSHOTS,
    SUBMISSIONS_RECEIVED,
    SUBMISSIONS_REJECTED,
    SUBMISSIONS_VALIDATED,
)

SETTINGS = KafkaSettings(topic_prefix="env.")
T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)
VAULT_KEY = bytes(range(32))


def letter(
    n: int,
    *,
    source: str = "env.intake.submissions.received",
    source_offset: int | None = None,
    value: bytes = b'{"event_id": "e"}',
    sealed: bool = False,
    partition: int = 0,
) -> StoredLetter:
    dead = DeadLetter(
        producer="validation",
        source_topic=source,
        partition=1,
        offset=n if source_offset is None else source_offset,
        consumer_group="validation",
        key_b64=base64.b64encode(b"child").decode(),
        value_b64=base64.b64encode(value).decode(),
        value_encoding="fernet" if sealed else "base64",
        error_type="ValueError",
        error="broken",
        attempts=3,
        failed_at=T0 + timedelta(minutes=n),
    )
    return StoredLetter(partition, n, dead)


def marker(stored: StoredLetter) -> Redriven:
    return Redriven(
        dead_letter_event_id=stored.letter.event_id,
        dead_letter=stored.id,
        source_topic=stored.letter.source_topic,
        source_partition=stored.letter.partition,
        source_offset=stored.letter.offset,
        redriven_partition=1,
        redriven_offset=99,
        redriven_at=T0,
        redriven_by="ops",
    )


# -- dead letters ----------------------------------------------------------------------------------


def test_letter_ids_are_partition_and_offset_or_a_bare_offset() -> None:
    assert LetterId.parse("2:15") == LetterId(15, 2)
    assert LetterId.parse("15") == LetterId(15, None)
    assert str(LetterId.parse("2:15")) == "2:15"
    for bad in ("x", "1:x", "1:-2", "-1:2", ""):
        with pytest.raises(OpsError):
            LetterId.parse(bad)


def test_source_topic_filter_takes_the_platform_or_the_prefixed_name() -> None:
    dead = letter(1).letter
    assert matches_source(SETTINGS, dead, None)
    assert matches_source(SETTINGS, dead, "intake.submissions.received")
    assert matches_source(SETTINGS, dead, "env.intake.submissions.received")
    assert not matches_source(SETTINGS, dead, "intake.receipts")


def test_latest_keeps_the_most_recent_oldest_first() -> None:
    letters = [letter(3), letter(1), letter(2)]
    assert [s.offset for s in latest(letters, 2)] == [2, 3]
    assert [s.offset for s in latest(letters, 10)] == [1, 2, 3]


def test_plain_values_decode_and_sealed_ones_need_the_vault_key() -> None:
    assert original_value(letter(1, value=b"raw").letter) == b"raw"
    sealed = Sealer(VAULT_KEY, Purpose.DEAD_LETTERS).seal(b'{"national_id": "01010112345"}')
    stored = letter(1, value=sealed, sealed=True)
    with pytest.raises(SealedError, match="sealed"):
        original_value(stored.letter)
    assert original_value(stored.letter, VAULT_KEY) == b'{"national_id": "01010112345"}'
    with pytest.raises(SealedError, match="does not open"):
        original_value(stored.letter, bytes(32))
    # A key intake derived for another purpose opens nothing here either.
    other = letter(2, value=Sealer(VAULT_KEY, Purpose.VAULT).seal(b"x"), sealed=True)
    with pytest.raises(SealedError):
        original_value(other.letter, VAULT_KEY)


def test_values_show_as_json_text_or_base64() -> None:
    assert readable(b'{"a": [1]}') == ("json", {"a": [1]})
    assert readable("ærlig".encode()) == ("text", "ærlig")
    assert readable(b"\xff\x00") == ("base64", base64.b64encode(b"\xff\x00").decode())
    assert readable(b"\x00\x01") == ("base64", "AAE=")  # valid UTF-8, but control characters
    assert readable(b"line\n\tnext") == ("text", "line\n\tnext")


def test_redrive_selects_each_source_record_once_and_skips_what_was_redriven() -> None:
    done, fresh, twin, other = letter(1), letter(2), letter(3, source_offset=2), letter(4)
    sealed = letter(5, sealed=True)
    plan = select_for_redrive([other, twin, fresh, done, sealed], {done.letter.event_id: marker(done)})
    assert [s.id for s in plan.selected] == ["0:2", "0:4"]
    reasons = {s.id: reason for s, reason in plan.skipped}
    assert reasons["0:1"].startswith("already redriven")
    assert "same source record as letter 0:2" in reasons["0:3"]
    assert "--unseal" in reasons["0:5"]

    # A second letter of a record already redriven (through its first letter) is skipped as well.
    again = select_for_redrive([twin], {fresh.letter.event_id: marker(fresh)})
    assert again.selected == [] and "already redriven" in again.skipped[0][1]

    assert select_for_redrive([done], {done.letter.event_id: marker(done)}, force=True).selected == [done]
    assert select_for_redrive([sealed], {}, can_unseal=True).selected == [sealed]


def test_listing_finds_the_redrive_of_a_letter_or_of_its_twin() -> None:
    first, twin, unrelated = letter(1), letter(2, source_offset=1), letter(3)
    listing = Listing([first, twin, unrelated], {first.letter.event_id: marker(first)})
    assert listing.marker_for(first) == listing.marker_for(twin) == marker(first)
    assert listing.marker_for(unrelated) is None


# -- lag and replay --------------------------------------------------------------------------------


def test_lag_counts_from_the_committed_offset_or_from_the_log_start() -> None:
    assert PartitionLag("t", 0, committed=7, start=0, end=10).lag == 3
    assert PartitionLag("t", 1, committed=None, start=2, end=10).lag == 8  # never committed: all of it
    assert PartitionLag("t", 2, committed=1, start=4, end=10).lag == 6  # behind the log start
    assert PartitionLag("t", 3, committed=10, start=0, end=10).lag == 0
    group = GroupLag(
        GroupState("g", "Empty"),
        (PartitionLag("a", 0, 1, 0, 5), PartitionLag("a", 1, None, 0, 2), PartitionLag("b", 0, 0, 0, 1)),
    )
    assert group.topic_totals() == {"a": 6, "b": 1}
    assert group.total == 7


def test_replay_never_moves_a_group_forward() -> None:
    assert replay_target(start=0, committed=8, wanted=0) == 0  # to the beginning
    assert replay_target(start=0, committed=8, wanted=5) == 5  # to a time before the position
    assert replay_target(start=0, committed=3, wanted=5) == 3  # a time it has not reached: stays
    assert replay_target(start=2, committed=None, wanted=5) == 2  # never committed: it starts at the log start
    reset = Reset("t", 0, start=0, current=8, target=5, end=10)
    assert (reset.again, reset.ahead) == (3, 5)
    assert Reset("t", 0, start=2, current=None, target=2, end=10).again == 0


def test_replay_times_need_an_offset() -> None:
    assert parse_time("2026-01-31T00:00Z") == datetime(2026, 1, 31, tzinfo=UTC)
    assert parse_time("2026-01-31T01:00:00+01:00") == datetime(2026, 1, 31, tzinfo=UTC)
    for bad in ("2026-01-31T00:00", "yesterday"):
        with pytest.raises(OpsError):
            parse_time(bad)


def test_each_service_consumes_the_topics_of_the_architecture() -> None:
    def consumed(service: str) -> set[str]:
        return {spec.name for group in SERVICE_GROUPS[service] for spec in GROUP_INPUTS[group]}

    assert consumed("validation") == {SUBMISSIONS_RECEIVED.name}
    assert consumed("stats") == {SUBMISSIONS_VALIDATED.name, SUBMISSIONS_REJECTED.name, RECEIPTS.name}
    assert consumed("export") == {SUBMISSIONS_VALIDATED.name, RESERVATIONS.name}
    assert consumed("intake") == {HOSPITAL_INBOUND.name, SUBMISSIONS_VALIDATED.name, SUBMISSIONS_REJECTED.name}
    assert input_topics(SETTINGS, "validation") == ["env.intake.submissions.received"]
    assert input_topics(SETTINGS, "dashboard") == []


def test_replay_scope_is_the_services_groups_on_their_inputs() -> None:
    assert replay_scope(SETTINGS, "intake") == {
        "intake": ["env.validation.submissions.validated", "env.validation.submissions.rejected"],
        "intake-inbound": ["env.hospital.inbound.submissions"],
    }
    assert replay_scope(SETTINGS, "intake", ["hospital.inbound.submissions"]) == {
        "intake-inbound": ["env.hospital.inbound.submissions"]
    }
    assert replay_scope(SETTINGS, "stats", ["env.intake.receipts", "intake.receipts"]) == {
        "stats": ["env.intake.receipts"]
    }
    with pytest.raises(OpsError, match=r"does not consume env\.intake\.receipts"):
        replay_scope(SETTINGS, "export", ["intake.receipts"])
    with pytest.raises(OpsError, match="--topic"):
        replay_scope(SETTINGS, "dashboard")
    assert replay_scope(SETTINGS, "dashboard", ["stats.snapshots"]) == {"dashboard": ["env.stats.snapshots"]}


# -- topics ----------------------------------------------------------------------------------------


def test_topic_names_resolve_with_or_without_the_prefix() -> None:
    assert resolve(SETTINGS, "intake.reservations") == ("env.intake.reservations", RESERVATIONS)
    assert resolve(SETTINGS, "env.intake.reservations") == ("env.intake.reservations", RESERVATIONS)
    assert resolve(SETTINGS, "elsewhere") == ("elsewhere", None)


def test_drift_names_each_difference_from_the_declaration() -> None:
    settings = KafkaSettings(replication_factor=1, min_insync_replicas=1)
    partitions = tuple(PartitionInfo(p, 0, (0,), (0,)) for p in range(STATS_SNAPSHOTS.partitions))
    config = STATS_SNAPSHOTS.config(1)
    assert TopicDescription("s", STATS_SNAPSHOTS, True, partitions, config).drift(settings) == []
    drifted = TopicDescription("s", STATS_SNAPSHOTS, True, partitions[:1], config | {"cleanup.policy": "delete"})
    assert drifted.drift(settings) == [
        f"1 partitions, the platform declares {STATS_SNAPSHOTS.partitions}",
        "cleanup.policy=delete, expected compact",
    ]
    assert PartitionInfo(0, 1, (1, 2, 3), (1, 2)).under_replicated


# -- the CLI's own checks (no broker needed) -------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["deadletters", "redrive"],
        ["deadletters", "redrive", "0:1", "--all"],
        ["deadletters", "show", "zero"],
        ["replay", "stats"],
        ["replay", "stats", "--to-beginning", "--to-time", "2026-01-01T00:00Z"],
        ["replay", "stats", "--to-time", "2026-01-01T00:00"],
        ["replay", "export", "--to-beginning", "--topic", "intake.receipts"],
    ],
)
def test_cli_refuses_bad_arguments_before_touching_kafka(args: list[str]) -> None:
    # An unreachable broker: reaching for it would fail differently (exit code 1, not 2).
    result = CliRunner().invoke(app, args, env={"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"})
    assert result.exit_code == 2, result.output
