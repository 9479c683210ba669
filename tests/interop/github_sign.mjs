// Prints @octokit/webhooks-methods' signature of a payload file: node github_sign.mjs SECRET FILE
import { readFileSync } from "node:fs";
import { sign } from "@octokit/webhooks-methods";

const [secret, file] = process.argv.slice(2);
process.stdout.write(await sign(secret, readFileSync(file, "utf8")));
