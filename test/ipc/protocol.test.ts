/**
 * Greengrass IPC endpoint: the wire protocol (POST work, GET result once), auth, client context, expiry and the
 * TypeScript client's error mapping. Real HTTP over loopback; the host is the FakeDispatcher stand-in.
 */
import assert from 'node:assert/strict'
import {Agent, createServer, request} from 'node:http'
import {type AddressInfo, connect, type Socket} from 'node:net'
import {Readable} from 'node:stream'
import sharp from 'sharp'

import {
  GreengrassDependencyException,
  GreengrassInferenceException,
  invokeInferenceService,
  parsePredictions,
} from '../../src/client/index.js'
import {
  decodeClientContext,
  functionArn,
  ipcEndpoint,
  type IpcServer,
  lambdaEnvironment,
  parseFunctionArn,
  startIpcServer,
} from '../../src/serve/ipc.js'
import {FakeDispatcher, fakeProbabilities} from '../helpers/fake-dispatcher.js'

const TOKEN = 'test-token-123'
const REGION = 'us-west-2'

async function testJpeg(): Promise<Buffer> {
  return sharp({create: {background: {b: 200, g: 120, r: 30}, channels: 3, height: 16, width: 16}})
    .jpeg()
    .toBuffer()
}

const ctx = (custom: Record<string, string>) => Buffer.from(JSON.stringify({custom})).toString('base64')

describe('Greengrass IPC endpoint', () => {
  let server: IpcServer
  let dispatcher: FakeDispatcher
  let jpeg: Buffer
  let base: string
  const arn = functionArn(REGION, 'image-classification', 'imageClassification')

  const post = (body: Buffer, headers: Record<string, string> = {}, fnArn = arn) =>
    fetch(`${base}/2016-11-01/functions/${fnArn}`, {
      body,
      headers: {
        authorization: TOKEN,
        'x-amz-client-context': ctx({'Content-Type': 'image/jpeg'}),
        'x-amz-invocation-type': 'RequestResponse',
        ...headers,
      },
      method: 'POST',
    })
  const get = (id: string, fnArn = arn, token = TOKEN) =>
    fetch(`${base}/2016-11-01/functions/${fnArn}`, {headers: {authorization: token, 'x-amz-invocationid': id}})

  before(async () => {
    jpeg = await testJpeg()
  })

  beforeEach(async () => {
    dispatcher = new FakeDispatcher({
      imageClassification: {classes: 7},
      'loading-svc': {ready: false, reason: 'loading'},
    })
    server = await startIpcServer({
      authToken: TOKEN,
      dispatcher,
      maxPendingResults: 3,
      region: REGION,
      resultTtlMs: 200,
    })
    base = `http://127.0.0.1:${server.port}`
  })

  afterEach(async () => {
    await server.close()
  })

  it('answers POST with an invocation id and GET with the connector payload, once', async () => {
    const p = await post(jpeg)
    assert.equal(p.status, 202)
    const id = p.headers.get('x-amz-invocationid')
    assert.ok(id)
    const r = await get(id)
    assert.equal(r.status, 200)
    assert.equal(r.headers.get('x-amz-function-error'), null)
    const payload = (await r.json()) as {Body: string; ContentType: string}
    assert.equal(payload.ContentType, 'application/json')
    assert.match(payload.Body, /^\[[^ ]+\]$/)
    assert.deepEqual(JSON.parse(payload.Body), [...fakeProbabilities(jpeg, 7)])
    assert.equal(dispatcher.calls[0].request.contentType, 'image/jpeg')
    assert.ok(dispatcher.calls[0].request.body.equals(jpeg))
    const again = await get(id)
    assert.equal(again.status, 404)
    assert.match(((await again.json()) as {errorMessage: string}).errorMessage, /already fetched/)
    assert.equal(server.pendingResults(), 0)
  })

  it('refuses a missing or wrong token without running anything', async () => {
    const missing = await post(jpeg, {authorization: ''})
    assert.equal(missing.status, 401)
    assert.match(((await missing.json()) as {errorMessage: string}).errorMessage, /AWS_CONTAINER_AUTHORIZATION_TOKEN/)
    const wrong = await post(jpeg, {authorization: 'test-token-124'})
    assert.equal(wrong.status, 403)
    const longer = await post(jpeg, {authorization: `${TOKEN}x`})
    assert.equal(longer.status, 403)
    assert.equal(dispatcher.calls.length, 0)
    const id = (await post(jpeg)).headers.get('x-amz-invocationid')!
    assert.equal((await get(id, arn, 'nope')).status, 403)
    assert.equal((await get(id)).status, 200)
  })

  it('rejects unknown invocation ids, ids of another function, and a missing id', async () => {
    assert.equal((await get('00000000-0000-0000-0000-000000000000')).status, 404)
    const id = (await post(jpeg)).headers.get('x-amz-invocationid')!
    assert.equal((await get(id, functionArn(REGION, 'image-classification', 'other'))).status, 404)
    const noId = await fetch(`${base}/2016-11-01/functions/${arn}`, {headers: {authorization: TOKEN}})
    assert.equal(noId.status, 400)
    assert.equal((await get(id)).status, 200)
  })

  it('drops results nobody fetches after the TTL', async () => {
    const id = (await post(jpeg)).headers.get('x-amz-invocationid')!
    assert.equal(server.pendingResults(), 1)
    for (let i = 0; i < 50 && server.pendingResults() > 0; i++) await new Promise((r) => setTimeout(r, 50))
    assert.equal(server.pendingResults(), 0)
    const r = await get(id)
    assert.equal(r.status, 404)
    assert.match(((await r.json()) as {errorMessage: string}).errorMessage, /expired/)
  })

  it('bounds the results waiting to be fetched', async () => {
    dispatcher.delayMs = 100
    const ids = []
    for (let i = 0; i < 3; i++) ids.push((await post(jpeg)).headers.get('x-amz-invocationid')!)
    const over = await post(jpeg)
    assert.equal(over.status, 429)
    assert.match(((await over.json()) as {errorMessage: string}).errorMessage, /too many/)
    for (const id of ids) assert.equal((await get(id)).status, 200)
    assert.equal((await post(jpeg)).status, 202)
  })

  it('maps unknown functions, other AlgoTypes, other regions and unready services to HTTP errors', async () => {
    const cases: Array<[string, number, RegExp]> = [
      [
        functionArn(REGION, 'image-classification', 'nope'),
        404,
        /no local inference service named "nope".*imageClassification/,
      ],
      [
        functionArn(REGION, 'object-detection', 'imageClassification'),
        404,
        /AlgoType "object-detection" is not supported/,
      ],
      [functionArn('eu-west-1', 'image-classification', 'imageClassification'), 404, /region eu-west-1/],
      ['arn:aws:lambda:us-west-2:123456789012:function:MyFn', 404, /not an inference service/],
      [functionArn(REGION, 'image-classification', 'loading-svc'), 503, /not ready: loading/],
    ]
    for (const [fn, status, message] of cases) {
      const r = await post(jpeg, {}, fn)
      assert.equal(r.status, status, fn)
      assert.match(((await r.json()) as {errorMessage: string}).errorMessage, message)
    }

    assert.equal(dispatcher.calls.length, 0)
  })

  it('rejects malformed or oversize client contexts and other invocation types', async () => {
    const cases: Array<[Record<string, string>, number, RegExp]> = [
      [{'x-amz-client-context': 'not base64!'}, 400, /not valid base64/],
      [{'x-amz-client-context': Buffer.from('{oops').toString('base64')}, 400, /not base64 of a JSON object/],
      [{'x-amz-client-context': Buffer.from('[1]').toString('base64')}, 400, /JSON object/],
      [
        {'x-amz-client-context': Buffer.from('{"custom":{"Content-Type":5}}').toString('base64')},
        400,
        /must be a string/,
      ],
      [{'x-amz-client-context': 'A'.repeat(4000)}, 400, /limit is 3583/],
      [{'x-amz-invocation-type': 'Event'}, 400, /RequestResponse only/],
    ]
    for (const [headers, status, message] of cases) {
      const r = await post(jpeg, headers)
      assert.equal(r.status, status, JSON.stringify(headers).slice(0, 80))
      assert.match(((await r.json()) as {errorMessage: string}).errorMessage, message)
    }

    assert.equal(dispatcher.calls.length, 0)
    assert.deepEqual(decodeClientContext(ctx({Accept: 'application/json', 'Content-Type': 'image/png'})), {
      accept: 'application/json',
      contentType: 'image/png',
    })
    assert.deepEqual(decodeClientContext(undefined), {})
  })

  it('reports inference failures as Handled and host failures as Unhandled', async () => {
    const expectations: Array<[string, string]> = [
      ['BAD_IMAGE', 'Handled'],
      ['UNSUPPORTED_CONTENT_TYPE', 'Handled'],
      ['TIMEOUT', 'Handled'],
      ['MEMORY_LIMIT', 'Handled'],
      ['OVERLOADED', 'Unhandled'],
      ['RUNNER_RESTARTING', 'Unhandled'],
      ['INTERNAL', 'Unhandled'],
    ]
    for (const [code, functionError] of expectations) {
      dispatcher.services.get('imageClassification')!.failWith = code as never
      const id = (await post(jpeg)).headers.get('x-amz-invocationid')!
      const r = await get(id)
      assert.equal(r.status, 200)
      assert.equal(r.headers.get('x-amz-function-error'), functionError, code)
      const body = (await r.json()) as {errorMessage: string; errorType: string}
      assert.equal(body.errorType, code)
      assert.match(body.errorMessage, new RegExp(code))
    }
  })

  it('refuses bodies over the limit and non-loopback binds', async () => {
    const small = await startIpcServer({authToken: TOKEN, bodyLimitBytes: 1024, dispatcher})
    try {
      const r = await fetch(`http://127.0.0.1:${small.port}/2016-11-01/functions/${arn}`, {
        body: Buffer.alloc(4096, 1),
        headers: {authorization: TOKEN},
        method: 'POST',
      })
      assert.equal(r.status, 413)
      assert.match(((await r.json()) as {errorMessage: string}).errorMessage, /limit of 1024 bytes/)
      // streamed without a Content-Length: refused once the limit is passed, and nothing was started
      const streamed = await fetch(`http://127.0.0.1:${small.port}/2016-11-01/functions/${arn}`, {
        body: Readable.toWeb(Readable.from([Buffer.alloc(800, 1), Buffer.alloc(800, 2)])) as ReadableStream,
        duplex: 'half',
        headers: {authorization: TOKEN},
        method: 'POST',
      } as Parameters<typeof fetch>[1])
      assert.equal(streamed.status, 413)
      assert.equal(small.pendingResults(), 0)
      assert.equal(dispatcher.calls.length, 0)
    } finally {
      await small.close()
    }

    await assert.rejects(startIpcServer({authToken: TOKEN, dispatcher, host: '0.0.0.0'}), /loopback only/)
    await assert.rejects(startIpcServer({authToken: '', dispatcher}), /non-empty auth token/)
  })

  it('answers other paths, methods and the /work API with specific errors', async () => {
    const cases: Array<[string, string, number, RegExp]> = [
      ['GET', '/', 404, /GET \/ is not part of the Greengrass IPC API.*\/2016-11-01\/functions\/<function ARN>/],
      ['POST', '/2015-03-31/functions/x/invocations', 404, /not part of the Greengrass IPC API/],
      ['POST', '/2016-11-01/functions/', 404, /not part of the Greengrass IPC API/],
      ['POST', `/2016-11-01/functions/${arn}/extra`, 404, /not part of the Greengrass IPC API/],
      ['GET', `/2016-11-01/functions/${arn}/work`, 404, /no \/work API/],
      ['PUT', `/2016-11-01/functions/${arn}`, 405, /POST starts an invocation, GET fetches its result/],
      ['POST', '/2016-11-01/functions/%E0%A4%A', 400, /not valid URL encoding/],
    ]
    for (const [method, path, status, message] of cases) {
      const r = await fetch(`${base}${path}`, {headers: {authorization: TOKEN}, method})
      assert.equal(r.status, status, `${method} ${path}`)
      assert.match(((await r.json()) as {errorMessage: string}).errorMessage, message, `${method} ${path}`)
      if (status === 405) assert.equal(r.headers.get('allow'), 'GET, POST')
    }

    // a percent-encoded ARN addresses the same function, and a query string is ignored
    const p = await fetch(`${base}/2016-11-01/functions/${encodeURIComponent(arn)}?x=1`, {
      body: jpeg,
      headers: {authorization: TOKEN, 'x-amz-client-context': ctx({'Content-Type': 'image/jpeg'})},
      method: 'POST',
    })
    assert.equal(p.status, 202)
    assert.equal((await get(p.headers.get('x-amz-invocationid')!)).status, 200)
    assert.equal(dispatcher.calls.length, 1)
  })

  it('closes with an idle kept-alive connection open, answering a GET that still waits for its result', async () => {
    dispatcher.delayMs = 150
    const agent = new Agent({keepAlive: true})
    // the POST leaves an idle kept-alive connection in the agent; the GET goes on a connection of its own
    const posted = await new Promise<string>((resolve, reject) => {
      const req = request(
        {
          agent,
          headers: {authorization: TOKEN, 'x-amz-client-context': ctx({'Content-Type': 'image/jpeg'})},
          host: '127.0.0.1',
          method: 'POST',
          path: `/2016-11-01/functions/${arn}`,
          port: server.port,
        },
        (res) => {
          res.resume()
          res.on('end', () => resolve(String(res.headers['x-amz-invocationid'])))
        },
      )
      req.on('error', reject)
      req.end(jpeg)
    })
    try {
      const waiting = get(posted)
      await new Promise((r) => setTimeout(r, 30))
      const started = Date.now()
      await server.close()
      // the idle kept-alive connection did not hold the close for its keep-alive timeout
      assert.ok(Date.now() - started < 5000, `close took ${Date.now() - started} ms`)
      const answered = await waiting
      assert.equal(answered.status, 200)
      assert.match(((await answered.json()) as {Body: string}).Body, /^\[/)
    } finally {
      agent.destroy()
      server = await startIpcServer({authToken: TOKEN, dispatcher, region: REGION})
    }
  })

  it('does not wait for an upload that stalls when it closes, and starts nothing once closed', async () => {
    const socket = connect(server.port, '127.0.0.1')
    await new Promise((r) => socket.once('connect', r))
    const closedSocket = new Promise((r) => socket.once('close', r))
    socket.write(
      `POST /2016-11-01/functions/${arn} HTTP/1.1\r\nHost: x\r\nAuthorization: ${TOKEN}\r\nContent-Length: 1000\r\n\r\n` +
        'x'.repeat(10),
    )
    await new Promise((r) => setTimeout(r, 50))
    const started = Date.now()
    await server.close()
    assert.ok(Date.now() - started < 5000, `close took ${Date.now() - started} ms`)
    await closedSocket
    assert.equal(dispatcher.calls.length, 0)

    const endpoint = ipcEndpoint({authToken: TOKEN, dispatcher})
    endpoint.dispose()
    const bare = createServer(endpoint.handle)
    await new Promise<void>((resolve) => {
      bare.listen(0, '127.0.0.1', resolve)
    })
    try {
      const r = await fetch(`http://127.0.0.1:${(bare.address() as AddressInfo).port}/2016-11-01/functions/${arn}`, {
        body: jpeg,
        headers: {authorization: TOKEN},
        method: 'POST',
      })
      assert.equal(r.status, 503)
      assert.match(((await r.json()) as {errorMessage: string}).errorMessage, /shutting down/)
      assert.equal(endpoint.pending(), 0)
      assert.equal(dispatcher.calls.length, 0)
    } finally {
      bare.closeAllConnections()
      bare.close()
      server = await startIpcServer({authToken: TOKEN, dispatcher, region: REGION})
    }
  })

  it('parses function ARNs whose service names contain hyphens', () => {
    assert.deepEqual(parseFunctionArn(functionArn('us-east-1', 'image-classification', 'my-svc-2')), {
      algoType: 'image-classification',
      region: 'us-east-1',
      serviceName: 'my-svc-2',
    })
    assert.deepEqual(parseFunctionArn(functionArn('us-east-1', 'foo-bar', 'my-svc'), ['my-svc']), {
      algoType: 'foo-bar',
      region: 'us-east-1',
      serviceName: 'my-svc',
    })
    assert.equal(parseFunctionArn('arn:aws:lambda:us-east-1:aws:function:Other'), undefined)
    assert.deepEqual(lambdaEnvironment({port: 8123, region: REGION, token: 't'}), {
      AWS_CONTAINER_AUTHORIZATION_TOKEN: 't',
      AWS_REGION: REGION,
      GG_DAEMON_PORT: '8123',
      GGC_MAX_INTERFACE_VERSION: '1.5',
    })
  })

  describe('TypeScript client', () => {
    const opts = () => ({port: server.port, region: REGION, token: TOKEN})
    const args = (over: Partial<Parameters<typeof invokeInferenceService>[0]> = {}) => ({
      AlgoType: 'image-classification',
      Body: jpeg,
      ContentType: 'image/jpeg',
      ServiceName: 'imageClassification',
      ...over,
    })

    it('returns the predictions', async () => {
      const resp = await invokeInferenceService(args(), opts())
      assert.equal(resp.ContentType, 'application/json')
      const predictions = parsePredictions(resp.Body)
      assert.equal(predictions.length, 7)
      assert.ok(Math.abs(predictions.reduce((a, b) => a + b, 0) - 1) < 1e-4)
    })

    it('maps a corrupt image to GreengrassInferenceException', async () => {
      await assert.rejects(invokeInferenceService(args({Body: Buffer.from('not an image')}), opts()), (error) => {
        assert.ok(error instanceof GreengrassInferenceException)
        assert.equal(error.errorType, 'BAD_IMAGE')
        assert.match(error.message, /not a JPEG or PNG/)
        return true
      })
      await assert.rejects(
        invokeInferenceService(args({ContentType: 'image/gif'}), opts()),
        (error) => error instanceof GreengrassInferenceException && /image\/gif/.test(error.message),
      )
    })

    it('maps unknown service, wrong token and server down to GreengrassDependencyException', async () => {
      await assert.rejects(invokeInferenceService(args({ServiceName: 'nope'}), opts()), (error) => {
        assert.ok(error instanceof GreengrassDependencyException)
        assert.equal(error.status, 404)
        assert.match(error.message, /no local inference service named "nope"/)
        return true
      })
      await assert.rejects(
        invokeInferenceService(args(), {...opts(), token: 'wrong'}),
        (error) => error instanceof GreengrassDependencyException && error.status === 403,
      )
      const {port} = server
      await server.close()
      await assert.rejects(invokeInferenceService(args(), {...opts(), port}), (error) => {
        assert.ok(error instanceof GreengrassDependencyException)
        assert.match(error.message, /cannot reach the Greengrass IPC endpoint.*ECONNREFUSED/)
        return true
      })
      server = await startIpcServer({authToken: TOKEN, dispatcher, region: REGION})
    })

    it('keeps its connection between calls, and replaces one the endpoint closed just as it was reused', async () => {
      // a stand-in endpoint that hangs up on the first request it gets on a kept-alive connection (what a server's
      // idle timeout does when it fires just as the client reuses the connection)
      let connections = 0
      let hungUp = 0
      const body = JSON.stringify({Body: '[0.25,0.75]', ContentType: 'application/json'})
      const fake = createServer((req, res) => {
        const socket = req.socket as Socket & {served?: number}
        socket.served = (socket.served ?? 0) + 1
        if (socket.served === 3 && hungUp === 0) {
          hungUp++
          socket.destroy()
          return
        }

        req.resume()
        req.on('end', () => {
          if (req.method === 'POST') res.writeHead(202, {'x-amz-invocationid': 'id-1'}).end()
          else res.writeHead(200, {'content-type': 'application/json'}).end(body)
        })
      })
      fake.on('connection', () => connections++)
      await new Promise<void>((resolve) => {
        fake.listen(0, '127.0.0.1', resolve)
      })
      try {
        const {port} = fake.address() as AddressInfo
        for (let i = 0; i < 3; i++) {
          const resp = await invokeInferenceService(args(), {...opts(), port})
          assert.deepEqual(parsePredictions(resp.Body), [0.25, 0.75])
        }

        // call 1 on the first connection; call 2's POST hit the hang-up and went again on a second connection,
        // which carried the rest
        assert.equal(hungUp, 1)
        assert.equal(connections, 2)
      } finally {
        fake.closeAllConnections()
        fake.close()
      }
    })

    it('validates its arguments before calling', async () => {
      await assert.rejects(invokeInferenceService(args({ServiceName: '-bad'}), opts()), /ServiceName must match/)
      await assert.rejects(invokeInferenceService(args({AlgoType: 'a'}), opts()), /AlgoType must match/)
      await assert.rejects(invokeInferenceService(args({Body: 'x' as never}), opts()), /Body must be a Buffer/)
      assert.equal(dispatcher.calls.length, 0)
    })
  })
})
