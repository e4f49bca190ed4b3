"""Watching it, under Pulumi mocks: the managed collector, container logs, the alarm topic, every alarm, the
AMP rules and alert manager, and the dashboard (docs/DEPLOY.md "Watching it")."""

from __future__ import annotations

import json

import yaml

from infra import program
from infra.alert_rules import rules_yaml
from infra.config import AlarmThresholds, StackConfig
from infra.observability import CONTAINER_LOG_GROUPS, SCRAPER_ROLE, SCRAPER_USER
from infra.versions import DEFAULT_VERSION
from tests.infra.conftest import run
from tests.infra.mocks import ACCOUNT, OIDC_ISSUER

CLUSTER = "reviewstream-dev-eks"
TOPIC = f"arn:aws:sns:us-east-1:{ACCOUNT}:reviewstream-dev-alarms"
WORKSPACE = f"arn:aws:aps:us-east-1:{ACCOUNT}:workspace/ws-0123abcd-4567-89ef-0123-456789abcdef"
DOMAIN = "reviewstream-dev-search"


def alarms_by_name(mocks) -> dict[str, dict]:
    found = mocks.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")
    return {r.inputs["name"].removeprefix("reviewstream-dev-"): r.inputs for r in found}


def test_scraper_reads_the_cluster_into_the_workspace(stack) -> None:
    _, mocks = stack
    scraper = mocks.one("aws:amp/scraper:Scraper").inputs
    eks = scraper["source"]["eks"]
    assert eks["clusterArn"] == f"arn:aws:eks:us-east-1:{ACCOUNT}:cluster/{CLUSTER}"
    assert sorted(eks["subnetIds"]) == sorted(f"subnet-{s.name}" for s in mocks.of_type("aws:ec2/subnet:Subnet"))
    assert eks["securityGroupIds"] == ["sg-0eksclustersg"]  # the nodes' group: pods reachable on :9108
    assert scraper["destination"]["amp"]["workspaceArn"] == WORKSPACE
    config = yaml.safe_load(scraper["scrapeConfiguration"])
    relabels = config["scrape_configs"][0]["relabel_configs"]
    assert {"__meta_kubernetes_pod_annotation_prometheus_io_scrape"} == set(relabels[0]["source_labels"])
    assert "__meta_kubernetes_pod_annotation_prometheus_io_port" in relabels[2]["source_labels"]
    assert config["global"]["external_labels"]["cluster"] == CLUSTER
    workspace = mocks.one("aws:amp/workspace:Workspace").inputs
    assert "AMPAgentlessScraper" in workspace["tags"]  # the collector's own tag, kept


def test_collector_is_bound_to_the_documented_cluster_role(stack) -> None:
    _, mocks = stack
    role = mocks.one("kubernetes:rbac.authorization.k8s.io/v1:ClusterRole").inputs
    assert role["metadata"]["name"] == SCRAPER_ROLE
    assert {"nonResourceURLs": ["/metrics"], "verbs": ["get"]} in role["rules"]
    assert "pods" in role["rules"][0]["resources"] and "watch" in role["rules"][0]["verbs"]
    binding = mocks.one("kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding").inputs
    assert binding["subjects"] == [{"kind": "User", "name": SCRAPER_USER, "apiGroup": "rbac.authorization.k8s.io"}]
    assert binding["roleRef"]["name"] == SCRAPER_ROLE
    # API authentication mode: AMP creates the collector's access entry itself (a second one would conflict).
    assert mocks.of_type("aws:eks/accessEntry:AccessEntry") == []


def test_access_entry_on_request_maps_the_role_without_its_path(mocks) -> None:
    run(lambda: program.build(StackConfig(prometheus_scraper_access_entry=True)))
    entry = mocks.one("aws:eks/accessEntry:AccessEntry").inputs
    assert (
        entry["principalArn"] == f"arn:aws:iam::{ACCOUNT}:role/AWSServiceRoleForAmazonPrometheusScraper_1234abcd-56ef-7"
    )
    assert (entry["clusterName"], entry["type"], entry["userName"]) == (CLUSTER, "STANDARD", SCRAPER_USER)


def test_container_logs_ship_with_a_retention(stack) -> None:
    _, mocks = stack
    groups = {g.inputs["name"]: g.inputs for g in mocks.of_type("aws:cloudwatch/logGroup:LogGroup")}
    for kind in CONTAINER_LOG_GROUPS:
        assert groups[f"/aws/containerinsights/{CLUSTER}/{kind}"]["retentionInDays"] == 14
    addon = mocks.named("aws:eks/addon:Addon", "reviewstream-dev-amazon-cloudwatch-observability").inputs
    assert addon["addonVersion"] == f"v4.4.0-eksbuild.{DEFAULT_VERSION}"  # the default for the cluster's version
    assert json.loads(addon["configurationValues"]) == {"containerLogs": {"enabled": True}}
    assert addon["serviceAccountRoleArn"] == f"arn:aws:iam::{ACCOUNT}:role/reviewstream-dev-cloudwatch-agent"
    for kind in CONTAINER_LOG_GROUPS:  # the groups (and their retention) exist before Fluent Bit writes
        group = f"reviewstream-dev-containers-{kind}"
        addon_name = "reviewstream-dev-amazon-cloudwatch-observability"
        assert mocks.depends_on("aws:eks/addon:Addon", addon_name, "aws:cloudwatch/logGroup:LogGroup", group)
    trust = json.loads(mocks.named("aws:iam/role:Role", "reviewstream-dev-cloudwatch-agent").inputs["assumeRolePolicy"])
    condition = trust["Statement"][0]["Condition"]["StringEquals"]
    assert condition[f"{OIDC_ISSUER}:sub"] == "system:serviceaccount:amazon-cloudwatch:cloudwatch-agent"


def test_retention_is_a_stack_setting(mocks) -> None:
    run(lambda: program.build(StackConfig(container_log_retention_days=90)))
    groups = [
        g.inputs for g in mocks.of_type("aws:cloudwatch/logGroup:LogGroup") if "containerinsights" in g.inputs["name"]
    ]
    assert len(groups) == 4 and {g["retentionInDays"] for g in groups} == {90}


def test_topic_admits_only_this_accounts_alarms_and_workspace(stack) -> None:
    _, mocks = stack
    topic = mocks.one("aws:sns/topic:Topic").inputs
    key = mocks.named("aws:kms/key:Key", "reviewstream-dev-alarms").inputs
    assert topic["kmsMasterKeyId"] == key.get("arn", topic["kmsMasterKeyId"]) and key["enableKeyRotation"] is True
    key_policy = json.loads(key["policy"])
    publishers = key_policy["Statement"][1]
    assert set(publishers["Principal"]["Service"]) == {"cloudwatch.amazonaws.com", "aps.amazonaws.com"}
    policy = json.loads(mocks.one("aws:sns/topicPolicy:TopicPolicy").inputs["policy"])
    statements = {s["Sid"]: s for s in policy["Statement"]}
    amp = statements["PrometheusAlerts"]
    assert amp["Principal"] == {"Service": "aps.amazonaws.com"} and amp["Resource"] == TOPIC
    assert amp["Condition"]["ArnEquals"]["aws:SourceArn"] == WORKSPACE
    assert set(amp["Action"]) == {"sns:Publish", "sns:GetTopicAttributes"}
    cw = statements["CloudWatchAlarms"]
    assert cw["Condition"]["ArnLike"]["aws:SourceArn"] == f"arn:aws:cloudwatch:us-east-1:{ACCOUNT}:alarm:*"
    assert mocks.of_type("aws:sns/topicSubscription:TopicSubscription") == []  # no alarmEmail: no subscription


def test_alarm_email_subscribes_to_the_topic(mocks) -> None:
    run(lambda: program.build(StackConfig(alarm_email="oncall@example.com")))
    sub = mocks.one("aws:sns/topicSubscription:TopicSubscription").inputs
    assert (sub["topic"], sub["protocol"], sub["endpoint"]) == (TOPIC, "email", "oncall@example.com")


def test_each_cloudwatch_alarm_watches_its_metric_and_reaches_the_topic(stack) -> None:
    _, mocks = stack
    alarms = alarms_by_name(mocks)
    t = AlarmThresholds()
    assert set(alarms) == {
        "consumer-lag", "records-unread", "opensearch-red", "opensearch-yellow", "opensearch-storage",
        "opensearch-jvm", "pod-restarts",
    }  # fmt: skip
    for a in alarms.values():
        assert a["alarmActions"] == [TOPIC] and a["okActions"] == [TOPIC]
        assert 'docs/DEPLOY.md "Watching it"' in a["alarmDescription"]
    lag = alarms["consumer-lag"]
    assert (lag["namespace"], lag["metricName"]) == ("AWS/Kinesis", "GetRecords.IteratorAgeMilliseconds")
    assert lag["dimensions"] == {"StreamName": "reviewstream-dev-reviews"}
    assert (lag["statistic"], lag["threshold"]) == ("Maximum", t.consumer_lag_s * 1000)
    es = {"DomainName": DOMAIN, "ClientId": ACCOUNT}
    expected = {
        "opensearch-red": ("ClusterStatus.red", "Maximum", 1, "GreaterThanOrEqualToThreshold"),
        "opensearch-yellow": ("ClusterStatus.yellow", "Maximum", 1, "GreaterThanOrEqualToThreshold"),
        "opensearch-storage": ("FreeStorageSpace", "Minimum", 20 * 1024 * 0.2, "LessThanOrEqualToThreshold"),
        "opensearch-jvm": (
            "JVMMemoryPressure",
            "Maximum",
            t.opensearch_jvm_pressure_percent,
            "GreaterThanOrEqualToThreshold",
        ),
    }
    for key, (metric, stat, threshold, operator) in expected.items():
        a = alarms[key]
        assert (a["namespace"], a["metricName"], a["dimensions"]) == ("AWS/ES", metric, es), key
        assert (a["statistic"], a["threshold"], a["comparisonOperator"]) == (stat, threshold, operator), key
    restarts = alarms["pod-restarts"]
    (query,) = restarts["metricQueries"]
    assert "pod_number_of_container_restarts" in query["expression"]
    assert f"ClusterName = '{CLUSTER}' AND Namespace = 'reviewstream'" in query["expression"]
    assert restarts["threshold"] == t.pod_restarts
    unread = {q["id"]: q for q in alarms["records-unread"]["metricQueries"]}
    assert unread["incoming"]["metric"]["metricName"] == "IncomingRecords"
    assert unread["read"]["metric"]["metricName"] == "GetRecords.Records"
    assert unread["unread"]["returnData"] is True


def test_thresholds_are_stack_settings(mocks) -> None:
    t = AlarmThresholds(consumer_lag_s=60, opensearch_free_storage_percent=10, pod_restarts=1)
    run(lambda: program.build(StackConfig(alarms=t, opensearch_instance_count=1, opensearch_volume_size_gb=50)))
    alarms = alarms_by_name(mocks)
    assert alarms["consumer-lag"]["threshold"] == 60_000
    assert alarms["opensearch-storage"]["threshold"] == 50 * 1024 * 0.1
    assert alarms["pod-restarts"]["threshold"] == 1
    assert "opensearch-yellow" not in alarms  # one node is always yellow
    rules = yaml.safe_load(mocks.one("aws:amp/ruleGroupNamespace:RuleGroupNamespace").inputs["data"])
    lag = [r for r in rules["groups"][0]["rules"] if r["alert"] == "ReviewstreamShardLag"]
    assert lag[0]["expr"].endswith("> 60000")


def test_amp_rules_and_alert_manager_route_to_the_topic(stack) -> None:
    _, mocks = stack
    namespace = mocks.one("aws:amp/ruleGroupNamespace:RuleGroupNamespace").inputs
    assert namespace["workspaceId"] == WORKSPACE.rsplit("/", 1)[1]
    assert namespace["data"] == rules_yaml(AlarmThresholds())
    definition = mocks.one("aws:amp/alertManagerDefinition:AlertManagerDefinition").inputs
    config = yaml.safe_load(yaml.safe_load(definition["definition"])["alertmanager_config"])
    (receiver,) = config["receivers"]
    assert config["route"]["receiver"] == receiver["name"]
    assert receiver["sns_configs"][0]["topic_arn"] == TOPIC
    assert receiver["sns_configs"][0]["sigv4"] == {"region": "us-east-1"}
    # AMP may publish before the alert manager can route anything.
    definition_type = "aws:amp/alertManagerDefinition:AlertManagerDefinition"
    policy = ("aws:sns/topicPolicy:TopicPolicy", "reviewstream-dev-alarms")
    assert mocks.depends_on(definition_type, "reviewstream-dev-alertmanager", *policy)


def test_dashboard_shows_the_flow_beside_the_services(stack) -> None:
    built, mocks = stack
    body = json.loads(mocks.one("aws:cloudwatch/dashboard:Dashboard").inputs["dashboardBody"])
    widgets = body["widgets"]
    (alarm_widget,) = [w for w in widgets if w["type"] == "alarm"]
    assert len(alarm_widget["properties"]["alarms"]) == len(alarms_by_name(mocks))
    lines = [m for w in widgets if w["type"] == "metric" for m in w["properties"]["metrics"]]
    metrics = {(m[0], m[1]) for m in lines if isinstance(m[0], str)}
    assert {
        ("AWS/Kinesis", "GetRecords.IteratorAgeMilliseconds"), ("AWS/Kinesis", "IncomingRecords"),
        ("AWS/Bedrock", "InvocationThrottles"), ("AWS/Bedrock", "InputTokenCount"), ("AWS/Bedrock", "OutputTokenCount"),
        ("AWS/ES", "ClusterStatus.red"), ("AWS/ES", "FreeStorageSpace"), ("AWS/ES", "JVMMemoryPressure"),
    } <= metrics  # fmt: skip
    bedrock = [m for m in lines if m[0] == "AWS/Bedrock"]
    assert all(m[2:4] == ["ModelId", built.config.bedrock_model_id] for m in bedrock)
    (cost_widget,) = [w for w in widgets if "cost" in w["properties"].get("title", "")]
    cost = [m[0]["expression"] for m in cost_widget["properties"]["metrics"] if "expression" in m[0]]
    assert cost == ["(tin * 1.1 + tout * 5.5) / 1000000"]  # the dataflow's price table: Haiku 4.5, US profile
    logs = [w for w in widgets if w["type"] == "log"]
    assert f"/aws/containerinsights/{CLUSTER}/application" in logs[0]["properties"]["query"]
