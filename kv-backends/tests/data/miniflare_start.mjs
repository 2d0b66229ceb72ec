// Starts Miniflare with its local explorer API for the tests that talk to it.
//
// usage: node miniflare_start.mjs MINIFLARE_PACKAGE_DIR
//
// Miniflare 3/4 has no command line of its own (`wrangler dev` embeds it), so this script is
// its launcher. It listens on 127.0.0.1 on a port the system picks, prints one line
// `ready http://127.0.0.1:PORT/` when it serves, and shuts Miniflare (and its workerd) down on
// SIGTERM, SIGINT, or when its stdin closes, so a test that dies leaves nothing running.
//
// The worker is named (the explorer API skips unnamed workers) and binds two KV namespaces,
// KV1 (id "kv1-id") and KV2 (id "kv2-id"): the explorer's namespaces are its bindings. The
// worker's `/put-ttl?k=KEY` writes through the binding with a TTL and metadata, which the
// explorer's REST PUT cannot do (it drops expirations).
import { pathToFileURL } from "node:url";
import { join } from "node:path";

const packageDir = process.argv[2];
if (!packageDir) {
  console.error("usage: node miniflare_start.mjs MINIFLARE_PACKAGE_DIR");
  process.exit(2);
}
const { Miniflare } = await import(pathToFileURL(join(packageDir, "dist/src/index.js")).href);

const mf = new Miniflare({
  name: "kvtest",
  modules: true,
  script: `export default { async fetch(req, env) {
    const u = new URL(req.url);
    if (u.pathname === "/put-ttl") {
      await env.KV1.put(u.searchParams.get("k"), "v", { expirationTtl: 600, metadata: { via: "binding" } });
      return new Response("ok");
    }
    return new Response("worker ok");
  } }`,
  kvNamespaces: { KV1: "kv1-id", KV2: "kv2-id" },
  host: "127.0.0.1",
  port: 0,
  unsafeLocalExplorer: true,
});
const url = await mf.ready;
console.log("ready", url.href);

let stopping = false;
async function stop() {
  if (stopping) return;
  stopping = true;
  try {
    await mf.dispose();
  } finally {
    process.exit(0);
  }
}
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
process.stdin.on("end", stop);
process.stdin.on("error", stop);
process.stdin.resume();
