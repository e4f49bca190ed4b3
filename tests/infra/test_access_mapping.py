"""OpenSearch access mapping as an ordered deploy step, run as a dedicated security-admin role.

The program checks read only resource types and names (no new module), so they also ran against the
code before the Job existed; the script checks run infra/assets/map_access.py against a recording fake
security API that answers like a young domain (unreachable, 503, 403) before it accepts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.infra.mocks import ACCOUNT, OIDC_ISSUER

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "infra" / "assets" / "map_access.py"
JOB = ("kubernetes:batch/v1:Job", "reviewstream-dev-access-mapping")
STS = ("kubernetes:apps/v1:StatefulSet", "reviewstream-dev-dataflow")
ROLE = f"arn:aws:iam::{ACCOUNT}:role/reviewstream-dev-"


def test_statefulset_starts_only_after_the_access_mapping_job(stack) -> None:
    _, mocks = stack
    assert mocks.depends_on(*STS, *JOB), mocks.options[STS].dependencies


def test_job_runs_after_the_domain_admits_its_role_and_nodes_exist(stack) -> None:
    _, mocks = stack
    assert mocks.depends_on(*JOB, "aws:opensearch/domainPolicy:DomainPolicy", "reviewstream-dev-search")
    assert mocks.depends_on(*JOB, "eks:index:ManagedNodeGroup", "reviewstream-dev-nodes")
    job = mocks.named(*JOB).inputs
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["serviceAccountName"] == "search-admin"
    (container,) = pod["containers"]
    assert container["command"] == ["python", "/opt/access/map_access.py"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["OPENSEARCH_URL"] == "https://vpc-reviewstream-dev-search-abc123.us-east-1.es.amazonaws.com"
    assert container["image"].endswith("/reviewstream-dev/dataflow:0.1.0")


def test_master_user_is_a_dedicated_admin_role_not_the_bastion(stack) -> None:
    _, mocks = stack
    domain = mocks.one("aws:opensearch/domain:Domain").inputs
    master = domain["advancedSecurityOptions"]["masterUserOptions"]["masterUserArn"]
    assert master == f"{ROLE}search-admin"
    trust = json.loads(mocks.named("aws:iam/role:Role", "reviewstream-dev-search-admin").inputs["assumeRolePolicy"])
    (statement,) = trust["Statement"]
    assert statement["Condition"]["StringEquals"][f"{OIDC_ISSUER}:sub"] == (
        "system:serviceaccount:reviewstream:search-admin"
    )
    sa = mocks.named("kubernetes:core/v1:ServiceAccount", "reviewstream-dev-search-admin-sa").inputs
    assert sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] == master
    bastion = mocks.one("aws:ec2/instance:Instance").inputs
    assert "_plugins/_security" not in bastion["userData"]  # no mapping as a side effect of a boot


def test_plan_maps_writer_reader_and_dashboards(stack) -> None:
    _, mocks = stack
    (config,) = [c for c in mocks.of_type("kubernetes:core/v1:ConfigMap") if "access-plan" in c.name]
    plan = json.loads(config.inputs["data"]["plan.json"])
    assert config.inputs["data"]["map_access.py"] == SCRIPT.read_text()
    mappings = {s["path"].rsplit("/", 1)[1]: s["body"]["backend_roles"] for s in plan if "/rolesmapping/" in s["path"]}
    assert mappings == {
        "reviewstream_writer": [f"{ROLE}dataflow"],
        "reviewstream_reader": [f"{ROLE}bastion"],
        "kibana_user": [f"{ROLE}bastion"],
    }
    paths = [s["path"] for s in plan]
    assert paths.index("/_plugins/_security/api/roles/reviewstream_writer") < paths.index(
        "/_plugins/_security/api/rolesmapping/reviewstream_writer"
    )
    writer = next(s["body"] for s in plan if s["path"].endswith("/roles/reviewstream_writer"))
    assert writer["index_permissions"][0]["index_patterns"] == ["processed_reviews*", "processed_reviews_dlq*"]
    volume = next(v for v in mocks.named(*JOB).inputs["spec"]["template"]["spec"]["volumes"] if "configMap" in v)
    assert volume["configMap"]["name"]


class SecurityApi(BaseHTTPRequestHandler):
    """A fake domain's security API: scripted answers per (method, path), then 200 and a stored object."""

    script: dict[tuple[str, str], list[int]] = {}
    seen: list[tuple[str, str, dict[str, str], bytes]] = []
    store: dict[str, object] = {}

    def _answer(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        SecurityApi.seen.append((self.command, self.path, dict(self.headers.items()), body))
        queue = SecurityApi.script.get((self.command, self.path), [])
        status = queue.pop(0) if queue else 200
        payload = b'{"status":"error"}'
        if status == 200 and self.command == "PUT":
            SecurityApi.store[self.path] = json.loads(body)
            payload = b'{"status":"OK"}'
        elif status == 200:
            name = self.path.rsplit("/", 1)[1]
            payload = json.dumps({name: SecurityApi.store.get(self.path, {})}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_PUT = _answer

    def log_message(self, *args) -> None:
        pass


@pytest.fixture()
def security_api() -> Iterator[str]:
    SecurityApi.script, SecurityApi.seen, SecurityApi.store = {}, [], {}
    server = ThreadingHTTPServer(("127.0.0.1", 0), SecurityApi)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def run_script(url: str, plan: list[dict], tmp_path: Path, deadline_s: float = 30) -> subprocess.CompletedProcess:
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        OPENSEARCH_URL=url,
        AWS_REGION="us-east-1",
        AWS_ACCESS_KEY_ID="AKIDEXAMPLE",
        AWS_SECRET_ACCESS_KEY="secret",
        AWS_CONFIG_FILE=str(tmp_path / "none"),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"),
        ACCESS_PLAN=str(tmp_path / "plan.json"),
        ACCESS_DEADLINE_S=str(deadline_s),
        ACCESS_RETRY_MAX_S="0.05",
    )
    return subprocess.run([sys.executable, str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60)


def the_plan() -> list[dict]:
    from infra.access import security_plan

    return security_plan(f"{ROLE}dataflow", f"{ROLE}bastion", "processed_reviews", "processed_reviews_dlq")


def test_script_waits_out_a_young_domain_then_applies_and_verifies_signed(security_api: str, tmp_path: Path) -> None:
    plan = the_plan()
    first = ("PUT", plan[0]["path"])
    SecurityApi.script = {first: [503, 403, 401], ("PUT", plan[2]["path"]): [502]}
    done = run_script(security_api, plan, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    puts = [(m, p) for m, p, _, _ in SecurityApi.seen if m == "PUT"]
    assert puts.count(first) == 4
    assert list(dict.fromkeys(p for _, p in puts)) == [s["path"] for s in plan]  # in plan order
    for method, path, headers, _ in SecurityApi.seen:
        assert headers["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"), (method, path)
        assert "/us-east-1/es/aws4_request" in headers["Authorization"]
    gets = [p for m, p, _, _ in SecurityApi.seen if m == "GET"]
    assert sorted(gets) == sorted(s["path"] for s in plan if "/rolesmapping/" in s["path"])
    assert SecurityApi.store[plan[2]["path"]] == {"backend_roles": [f"{ROLE}dataflow"]}
    assert "access.done steps=5" in done.stdout
    assert done.stdout.count("access.retry") == 4


def test_script_fails_fast_on_a_plan_error(security_api: str, tmp_path: Path) -> None:
    plan = the_plan()
    SecurityApi.script = {("PUT", plan[0]["path"]): [400]}
    done = run_script(security_api, plan, tmp_path)
    assert done.returncode == 1
    assert len(SecurityApi.seen) == 1
    (line,) = [x for x in done.stdout.splitlines() if x.startswith("access.failed")]
    assert "answered 400" in line


def test_script_gives_up_at_its_deadline(security_api: str, tmp_path: Path) -> None:
    plan = the_plan()
    SecurityApi.script = {("PUT", plan[0]["path"]): [403] * 10_000}
    done = run_script(security_api, plan, tmp_path, deadline_s=0.5)
    assert done.returncode == 1
    assert "still failing at the deadline (status=403)" in done.stdout


def test_script_reports_a_mapping_that_did_not_stick(security_api: str, tmp_path: Path) -> None:
    plan = the_plan()
    mapping = next(s for s in plan if s["path"].endswith("/rolesmapping/reviewstream_writer"))
    SecurityApi.script = {("PUT", mapping["path"]): [200]}
    original = SecurityApi._answer

    def forgetful(self) -> None:  # accepts the PUT, stores nothing for the writer mapping
        original(self)
        SecurityApi.store.pop(mapping["path"], None)

    SecurityApi.do_PUT = forgetful  # type: ignore[method-assign]
    try:
        done = run_script(security_api, plan, tmp_path)
    finally:
        SecurityApi.do_PUT = original  # type: ignore[method-assign]
    assert done.returncode == 1
    assert "mapping reviewstream_writer has backend roles []" in done.stdout
