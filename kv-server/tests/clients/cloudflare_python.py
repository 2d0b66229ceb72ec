"""Drives the official `cloudflare` Python SDK against a running kv-server.

Usage: python3 cloudflare_python.py BASE_URL ACCOUNT_ID

BASE_URL includes `/client/v4`. The server must already hold the namespaces the Rust test
created (titles `bulk-0000` ...), so that the SDK's auto-paging iterators have several pages to
walk. Every SDK call has a 10 s timeout and no retries; every iteration is capped, so a server
that never ends a listing fails here with "runaway" instead of hanging. Prints one JSON object
with what it saw; the Rust test asserts on it.
"""

import json
import sys

import cloudflare
from cloudflare import Cloudflare

# Far more than any listing in the test holds: reaching it means the iterator never ends.
CAP = 5000


def walk(iterator):
    """Every item of an auto-paging iterator, failing on one that does not end."""
    items = []
    for item in iterator:
        items.append(item)
        if len(items) > CAP:
            raise SystemExit(f"runaway: an auto-paging iterator passed {CAP} items")
    return items


def main():
    base, account = sys.argv[1], sys.argv[2]
    client = Cloudflare(api_token="test-token", base_url=base, max_retries=0, timeout=10)
    kv = client.kv.namespaces
    out = {"sdk_version": cloudflare.__version__}

    # Namespaces: create, the auto-paging listing (default page size, a small page size, every
    # order and direction), get, rename, delete.
    created = kv.create(account_id=account, title="py-first")
    ns = created.id
    out["created_title"] = created.title
    titles = [n.title for n in walk(kv.list(account_id=account))]
    out["list_default"] = {"count": len(titles), "distinct": len(set(titles))}
    first_page = kv.list(account_id=account)
    out["first_page_info"] = first_page.result_info.to_dict()
    out["first_page_len"] = len(first_page.result)
    small = [n.id for n in walk(kv.list(account_id=account, per_page=7))]
    out["list_per_page_7"] = {"count": len(small), "distinct": len(set(small))}
    by_id_desc = [n.id for n in walk(kv.list(account_id=account, order="id", direction="desc"))]
    out["id_desc_sorted"] = by_id_desc == sorted(by_id_desc, reverse=True)
    by_title = [n.title for n in walk(kv.list(account_id=account, order="title", direction="asc"))]
    out["title_asc_sorted"] = by_title == sorted(by_title)
    pages = list(kv.list(account_id=account, per_page=1000).iter_pages())
    out["pages_of_1000"] = [len(p.result) for p in pages]
    out["got_title"] = kv.get(ns, account_id=account).title
    kv.update(ns, account_id=account, title="py-renamed")
    out["renamed_title"] = kv.get(ns, account_id=account).title

    # Keys: put with metadata and a TTL, get, metadata, list with cursor paging, delete.
    kv.values.update(
        "a/b c", account_id=account, namespace_id=ns, value=b"\x00bytes\xff",
        metadata={"a": 1}, expiration_ttl=600,
    )
    got = kv.values.get("a/b c", account_id=account, namespace_id=ns)
    out["value_hex"] = got.read().hex()
    out["value_expiration_header"] = got.headers.get("expiration")
    out["metadata"] = kv.metadata.get("a/b c", account_id=account, namespace_id=ns)
    for i in range(25):
        kv.values.update(f"k{i:02}", account_id=account, namespace_id=ns, value=b"v")
    listed = walk(kv.keys.list(ns, account_id=account, limit=10, prefix="k"))
    out["keys_listed"] = [k.name for k in listed]
    with_meta = walk(kv.keys.list(ns, account_id=account, prefix="a/"))
    out["listed_meta"] = [
        {"name": k.name, "metadata": k.metadata, "has_expiration": k.expiration is not None}
        for k in with_meta
    ]
    kv.values.delete("a/b c", account_id=account, namespace_id=ns)
    try:
        kv.values.get("a/b c", account_id=account, namespace_id=ns)
        out["deleted_get"] = "found"
    except cloudflare.NotFoundError:
        out["deleted_get"] = "not found"

    # Bulk: write 1500 pairs, read 100 of them back with metadata, delete all 1500.
    items = [
        {"key": f"bulk-{i:05}", "value": f"value {i}", "metadata": {"i": i}}
        for i in range(1500)
    ]
    written = kv.bulk_update(ns, account_id=account, body=items)
    out["bulk_written"] = written.successful_key_count
    wanted = [f"bulk-{i:05}" for i in range(0, 1500, 15)]
    read = kv.bulk_get(ns, account_id=account, keys=wanted[:99] + ["missing"], with_metadata=True)
    values = read.values
    out["bulk_read"] = {
        "count": len(values),
        "first": {"value": values[wanted[0]].value, "metadata": values[wanted[0]].metadata},
        "missing": values["missing"],
    }
    out["bulk_listed_before_delete"] = len(walk(kv.keys.list(ns, account_id=account, prefix="bulk-")))
    deleted = kv.bulk_delete(ns, account_id=account, body=[item["key"] for item in items])
    out["bulk_deleted"] = deleted.successful_key_count
    out["bulk_listed_after_delete"] = len(walk(kv.keys.list(ns, account_id=account, prefix="bulk-")))

    kv.delete(ns, account_id=account)
    try:
        kv.get(ns, account_id=account)
        out["deleted_namespace"] = "found"
    except cloudflare.NotFoundError:
        out["deleted_namespace"] = "not found"

    print(json.dumps(out, sort_keys=True))


if __name__ == "__main__":
    main()
