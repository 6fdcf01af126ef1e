"""Observability.watch: a consumer's constructs get their alarms, each with an action, without hand wiring."""

from __future__ import annotations

import pytest
from aws_cdk import Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_sqs as sqs
from aws_cdk.assertions import Template
from constructs import IConstruct

from cdk_app.api import FastApiGateway
from cdk_app.cache import ValkeyCache
from cdk_app.cold_start import ColdStart, ProvisionedConcurrency
from cdk_app.function import FastApiFunction
from cdk_app.network import Network
from cdk_app.observability import Observability
from cdk_app.tasks import TaskQueue
from cdk_app.testing import app_for_tests


def consumer_stack() -> tuple[Stack, dict[str, IConstruct]]:
    stack = Stack(app_for_tests(), "consumer")
    network = Network(stack, "Network")
    cache = ValkeyCache(stack, "Cache", network=network)
    api = FastApiFunction(stack, "Orders", cold_start=ColdStart.provisioned_concurrency(ProvisionedConcurrency(min_capacity=1, max_capacity=2)),
                          **network.placement())
    built = {"cache": cache, "api": api, "queue": TaskQueue(stack, "Jobs"),
             "gateway": FastApiGateway(stack, "Gateway", handler=api.alias)}
    network.add_endpoints_for(api)
    return stack, built


def alarm_actions(stack: Stack) -> dict[str, list[object]]:
    alarms = Template.from_stack(stack).find_resources("AWS::CloudWatch::Alarm")
    return {name: alarm["Properties"].get("AlarmActions", []) for name, alarm in alarms.items()}


def test_watching_the_stack_gives_every_alarm_an_action():
    stack, _ = consumer_stack()
    observability = Observability(stack, "Observability")

    added = observability.watch(stack)

    actions = alarm_actions(stack)
    topic = {"Ref": next(iter(Template.from_stack(stack).find_resources("AWS::SNS::Topic")))}
    assert all(value == [topic] for value in actions.values()), actions
    # The capabilities' own alarms, each found in its construct:
    assert any(name.startswith("CacheErrorsAlarm") for name in actions)
    assert any(name.startswith("JobsDeadLetterAlarm") for name in actions)
    assert any(name.startswith("JobsOldestMessageAlarm") for name in actions)
    assert any(name.startswith("OrdersColdStartSpilloverAlarm") for name in actions)
    # and those watch makes: two functions (errors, throttles, p99) and the gateway's 5xx rate.
    made = {alarm.node.id for alarm in added if alarm.node.scope is observability}
    assert made == {f"{name}{what}" for name in ("Orders", "Worker") for what in ("Errors", "Throttles", "SlowP99")} \
        | {"Gateway5xxRate"}


def test_each_construct_alone_and_twice_adds_each_alarm_once():
    stack, built = consumer_stack()
    observability = Observability(stack, "Observability")
    queue = built["queue"]
    assert isinstance(queue, TaskQueue)

    first = observability.watch(queue.worker, built["cache"])  # the worker first, then its queue
    second = observability.watch(queue, *built.values(), stack)

    assert {alarm.node.path for alarm in first}.isdisjoint(alarm.node.path for alarm in second)
    assert len(observability.alarms) == len({alarm.node.path for alarm in observability.alarms})
    assert observability.watch(stack) == []
    assert all(actions for actions in alarm_actions(stack).values())


def test_an_alarm_of_your_own():
    stack, _ = consumer_stack()
    observability = Observability(stack, "Observability")
    mine = cloudwatch.Alarm(stack, "Mine", metric=sqs.Queue(stack, "Q").metric_number_of_messages_sent(),
                            threshold=1, evaluation_periods=1)

    assert observability.watch(mine) == [mine]


def test_something_it_does_not_know_is_named_with_what_it_knows():
    stack, _ = consumer_stack()
    observability = Observability(stack, "Observability")

    with pytest.raises(TypeError, match=r"consumer/Q \(Queue\) has no alarms it knows; it knows ServiceFunction"):
        observability.watch(sqs.Queue(stack, "Q"))
