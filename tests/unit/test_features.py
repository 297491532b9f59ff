"""The features as the composition root sees them: each says all it brings, and two that
claim the same message, command or stream type stop the service at start."""

from __future__ import annotations

import pytest

from handlers.access import anyone
from handlers.feature import Feature, merged
from mediator import Command, ConfigurationError, Registry
from orderdesk.bootstrap import FEATURES, PROJECTIONS, check_policies


def test_each_feature_is_one_value_with_its_own_projections() -> None:
    assert [feature.name for feature in FEATURES] == [
        "products",
        "customers",
        "orders",
        "sign_in",
        "webhooks",
    ]
    assert [p.name for p in PROJECTIONS] == [
        "product_catalog",
        "customer_summaries",
        "orders",
        "webhook_summaries",
    ]
    for feature in FEATURES:
        assert feature.event_types, feature.name
        assert set(feature.idempotent) <= set(feature.policies), feature.name
        assert set(feature.cached) <= set(feature.policies), feature.name


def test_a_message_two_features_claim_is_a_start_up_error() -> None:
    class Clash:
        pass

    def nothing(*_: object) -> None:
        return None

    one = Feature("one", (), {Clash: anyone}, nothing)
    other = Feature("other", (), {Clash: anyone}, nothing)
    with pytest.raises(ConfigurationError, match="in both one and other"):
        merged([one, other], lambda feature: feature.policies)


def test_a_policy_for_a_message_nothing_handles_is_a_start_up_error() -> None:
    class Forgotten(Command[None]):
        pass

    with pytest.raises(ConfigurationError, match="nothing handles Forgotten"):
        check_policies(Registry().build(), {Forgotten: anyone})


def test_a_message_without_a_policy_is_a_start_up_error() -> None:
    class Unguarded(Command[None]):
        pass

    async def handle(_message: Unguarded, _ctx: object) -> None:
        return None

    registry = Registry()
    registry.handle(Unguarded, handle)
    with pytest.raises(ConfigurationError, match="no access policy for Unguarded"):
        check_policies(registry.build(), {})
