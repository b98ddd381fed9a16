// The playground's request as code to paste: curl, or Python with Anthropic's SDK. The key is
// read from the environment, never written into the snippet.

function shellQuote(text) {
  return "'" + text.replace(/'/g, "'\\''") + "'";
}

export function curlSnippet(origin, body) {
  const json = JSON.stringify({ ...body, stream: true }, null, 2);
  return [
    `curl -N ${origin}/v1/messages \\`,
    `  -H "x-api-key: $STRATUS_API_KEY" \\`,
    `  -H 'content-type: application/json' \\`,
    `  -d ${shellQuote(json)}`,
  ].join("\n");
}

// JSON strings and numbers are Python literals too; the body holds nothing else.
function py(value) {
  return JSON.stringify(value, null, 4).replace(/\n/g, "\n    ");
}

export function pythonSnippet(origin, body) {
  const args = [`model=${py(body.model)}`, `max_tokens=${body.max_tokens}`];
  if (body.system !== undefined) args.push(`system=${py(body.system)}`);
  if (body.temperature !== undefined) args.push(`temperature=${body.temperature}`);
  args.push(`messages=${py(body.messages)}`);
  return [
    "import os",
    "",
    "import anthropic",
    "",
    `client = anthropic.Anthropic(api_key=os.environ["STRATUS_API_KEY"],`,
    `                             base_url=${py(origin)})`,
    "with client.messages.stream(",
    ...args.map((arg) => `    ${arg},`),
    ") as stream:",
    "    for text in stream.text_stream:",
    `        print(text, end="", flush=True)`,
    "print()",
  ].join("\n");
}
