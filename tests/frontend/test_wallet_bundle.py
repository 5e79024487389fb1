"""The browser wallet script is bundled from npm packages into static files (no CDN): the build
writes it where Django serves it from, self-contained, and the pages load it from there."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.staticfiles import finders

BUNDLE = "frontend/vendor/wallet.bundle.js"
CDN_HOSTS = (
    "cdn.jsdelivr.net",
    "unpkg.com",
    "cdnjs.cloudflare.com",
    "esm.sh",
    "cdn.skypack.dev",
    "jspm.io",
    "ajax.googleapis.com",
    "cdn.ethers.io",
    "code.jquery.com",
    "rawgit",
    "stackpath",
)


@pytest.fixture(scope="module")
def bundle() -> str:
    """Build as `make` does (node frontend/build.mjs after npm ci) and read what Django serves."""
    root = Path(settings.BASE_DIR)
    node = shutil.which("node")
    assert node, "node is needed to build the front-end assets (make installs it with the npm packages)"
    assert (root / "node_modules" / "esbuild").is_dir(), "npm packages missing: run `make npm-deps`"
    subprocess.run([node, "frontend/build.mjs"], cwd=root, check=True, capture_output=True, timeout=120)
    found = finders.find(BUNDLE)
    assert found, f"{BUNDLE} is not among the static files after the build"
    return Path(found).read_text()


def test_the_bundle_is_built_self_contained_and_minified(bundle):
    assert len(bundle) > 50_000  # ethers is inside
    assert bundle.count("\n") < 20, "minified"
    for method in ("eth_requestAccounts", "eth_signTypedData_v4", "eth_sendTransaction", "personal_sign"):
        assert method in bundle
    assert "/api/v1/orders/prepare/" in bundle and "eip6963:requestProvider" in bundle
    # No module left to fetch: no import or require of a package, no script or module from elsewhere.
    assert not re.search(r"""\bfrom\s*["']ethers["']|require\(["']ethers["']\)""", bundle)
    assert not re.search(r"""import\(\s*["']https?:""", bundle)
    assert not re.search(r"""createElement\(\s*["']script["']""", bundle)


def test_the_bundle_names_no_cdn(bundle):
    urls = set(re.findall(r"https?://[^\s\"'`)]+", bundle))
    assert not [u for u in urls if any(host in u for host in CDN_HOSTS)], urls


def test_pages_load_the_bundle_from_static_files(client):
    page = client.get("/login/").content.decode()
    assert f'src="/static/{BUNDLE}"' in page
    assert "Sign in with Ethereum" in page and 'data-wallet-action="login"' in page
    assert not re.search(r"<script[^>]+src=\"https?://", page)
