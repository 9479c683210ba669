// Prints X-Hub-Signature-256 for a file's contents as Meta's own WhatsApp Node SDK computes it
// (generateXHub256Sig, from the package's build; its package exports only the client class).
// Usage: node meta_sign.cjs APP_SECRET FILE
const fs = require("node:fs");
const path = require("node:path");
const sdk = path.dirname(require.resolve("whatsapp/package.json"));
const { generateXHub256Sig } = require(path.join(sdk, "build", "utils.js"));
const [secret, file] = process.argv.slice(2);
process.stdout.write(`sha256=${generateXHub256Sig(fs.readFileSync(file, "utf-8"), secret)}`);
