// Zoom's own Node SDK (@zoom/rivet) judges requests as its webhook receiver does: reads a JSON
// array of {secret, body, headers} on stdin and prints a JSON array of {status, body}, the
// answers of Rivet's AwsLambdaReceiver (200 with {plainToken, encryptedToken} for a verified
// endpoint.url_validation, 200 for another verified event, 400 for a bad signature).
import { AwsLambdaReceiver } from "@zoom/rivet/meetings";

console.debug = () => {}; // Rivet logs every event it processes.
console.error = () => {};

let input = "";
for await (const chunk of process.stdin) input += chunk;
const answers = [];
for (const { secret, body, headers } of JSON.parse(input)) {
  const receiver = new AwsLambdaReceiver({ webhooksSecretToken: secret });
  const r = await receiver.start()({ body, headers, isBase64Encoded: false }, {});
  answers.push({ status: r.statusCode, body: JSON.parse(r.body) });
}
process.stdout.write(JSON.stringify(answers));
