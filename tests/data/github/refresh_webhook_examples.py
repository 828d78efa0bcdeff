"""Rebuild webhook_examples.json.gz from the npm package @octokit/webhooks-examples.

GitHub's documented webhook payloads ("Webhook events and payloads" on docs.github.com) are
maintained as JSON in octokit/webhooks and published on npm (MIT licence). The test suite keeps
the examples of the events our GitHub plugin maps, so that the mappings are judged on GitHub's
shapes rather than on our own samples, without network access at test time.

    cd /tmp && npm pack @octokit/webhooks-examples@7.6.1 && tar xzf octokit-webhooks-examples-7.6.1.tgz
    python tests/data/github/refresh_webhook_examples.py /tmp/package
"""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

EVENTS = ("push", "pull_request", "deployment", "deployment_status", "release", "workflow_run")
TARGET = Path(__file__).with_name("webhook_examples.json.gz")


def main(package: Path) -> None:
    meta = json.loads((package / "package.json").read_text(encoding="utf-8"))
    corpus: dict = {"package": f"{meta['name']}@{meta['version']}", "license": meta["license"], "examples": {}}
    for index in sorted(package.glob("*/index.json")):
        for event in json.loads(index.read_text(encoding="utf-8")):
            if event["name"] in EVENTS:
                corpus["examples"].setdefault(index.parent.name, {})[event["name"]] = event["examples"]
    text = json.dumps(corpus, sort_keys=True, separators=(",", ":")).encode()
    TARGET.write_bytes(gzip.compress(text, mtime=0))
    print(f"wrote {TARGET} ({len(text):,} bytes of JSON)")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
