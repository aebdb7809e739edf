// @tier unit: needs neither ../shared nor child processes (npm run test:unit)
import assert from 'node:assert/strict'
import {readFileSync} from 'node:fs'
import {join} from 'node:path'

import {connectorForPlatform, CONNECTORS, type ConnectorVersion, parametersFor} from '../../src/connector/catalog.js'
import {checkDefinitionVersion, parseDefinitionVersion} from '../../src/connector/definition.js'
import {
  parameterProblems,
  parametersSchemaFile,
  SCHEMA_DIR,
  suggestJobArn,
  validateParameters,
} from '../../src/connector/parameters.js'
import {ValidationError} from '../../src/errors.js'

const x86 = {connector: connectorForPlatform('x86_64'), version: 1 as ConnectorVersion}
const jtx2 = {connector: connectorForPlatform('jtx2'), version: 1 as ConnectorVersion}
const x86v2 = {connector: connectorForPlatform('x86_64'), version: 2 as ConnectorVersion}

const VALID = {
  LocalInferenceServiceMemoryLimitKB: '500000',
  LocalInferenceServiceName: 'imageClassification',
  LocalInferenceServiceTimeoutSeconds: '10',
  MLModelDestinationPath: '/path-to-model',
  MLModelResourceId: 'my-ml-resource',
  MLModelSageMakerJobArn: 'arn:aws:sagemaker:us-west-2:123456789012:training-job/MyImageClassifier',
}

/** The problems for VALID with one parameter changed (undefined: removed). */
function withValue(name: string, value: unknown, target = x86) {
  const params: Record<string, unknown> = {...VALID, ...(target.connector.supportsGpu ? {GPUAcceleration: 'CPU'} : {})}
  if (value === undefined) delete params[name]
  else params[name] = value
  return parameterProblems(params, target)
}

function accepts(name: string, value: string, target = x86): void {
  assert.deepEqual(withValue(name, value, target), [], `${name}=${JSON.stringify(value)} should be accepted`)
}

function rejects(name: string, value: unknown, target = x86): string {
  const problems = withValue(name, value, target)
  assert.equal(problems.length, 1, `${name}=${JSON.stringify(value)}: ${JSON.stringify(problems)}`)
  assert.equal(problems[0].path, `/${name}`)
  return `${problems[0].message} ${problems[0].suggestion ?? ''}`
}

describe('connector parameter schemas', () => {
  it('ships one schema per connector version, with the parameters of the catalog (required-ness, no extras)', () => {
    for (const connector of CONNECTORS) {
      for (const version of connector.versions) {
        const schema = JSON.parse(readFileSync(join(SCHEMA_DIR, parametersSchemaFile(connector, version)), 'utf8'))
        const expected = parametersFor(connector, version)
        assert.deepEqual(Object.keys(schema.properties).sort(), expected.map((p) => p.name).sort())
        assert.deepEqual(
          [...schema.required].sort(),
          expected
            .filter((p) => p.required)
            .map((p) => p.name)
            .sort(),
        )
        assert.equal(schema.additionalProperties, false)
        for (const [name, prop] of Object.entries<{pattern?: string; type: string}>(schema.properties)) {
          assert.equal(prop.type, 'string', name)
          if (prop.pattern) assert.match(prop.pattern, /^\^.*\$$/, `${name} pattern must be anchored`)
        }
      }
    }
  })

  it('accepts the documentation examples (job ARN corrected) on every connector', () => {
    assert.deepEqual(parameterProblems(VALID, x86), [])
    assert.deepEqual(parameterProblems({...VALID, GPUAcceleration: 'GPU'}, jtx2), [])
    assert.deepEqual(parameterProblems({...VALID, MLFeedbackConnectorConfigId: 'my-feedback'}, x86v2), [])
  })

  it('MLModelDestinationPath: .+ (anchored: not empty, not a bare newline)', () => {
    accepts('MLModelDestinationPath', '/')
    accepts('MLModelDestinationPath', 'relative/model dir')
    assert.match(rejects('MLModelDestinationPath', ''), /MLModelDestinationPath must be a non-empty path/)
    rejects('MLModelDestinationPath', '/ml\n/model')
    assert.match(rejects('MLModelDestinationPath', undefined), /MLModelDestinationPath is required/)
  })

  it('MLModelResourceId: [a-zA-Z0-9:_-]+', () => {
    accepts('MLModelResourceId', 'a')
    accepts('MLModelResourceId', 'my:ml_resource-1')
    rejects('MLModelResourceId', '')
    rejects('MLModelResourceId', 'my resource')
    rejects('MLModelResourceId', 'my/resource')
    rejects('MLModelResourceId', 'résumé')
  })

  it('MLModelSageMakerJobArn: the anchored training-job/ pattern; training-job: gets "did you mean"', () => {
    accepts('MLModelSageMakerJobArn', 'arn:aws:sagemaker:us-west-2:123456789012:training-job/ab')
    accepts('MLModelSageMakerJobArn', 'arn:aws:sagemaker:eu-central-1:1:training-job/0-a')
    const message = rejects(
      'MLModelSageMakerJobArn',
      'arn:aws:sagemaker:us-west-2:123456789012:training-job:MyImageClassifier',
    )
    assert.match(message, /Did you mean "arn:aws:sagemaker:us-west-2:123456789012:training-job\/MyImageClassifier"/)
    rejects('MLModelSageMakerJobArn', 'arn:aws:sagemaker:us-west-2:123456789012:training-job/a') // name of 1 char
    rejects('MLModelSageMakerJobArn', 'arn:aws:sagemaker:us-west-2:123456789012:training-job/-ab') // leading dash
    rejects('MLModelSageMakerJobArn', 'arn:aws:sagemaker:us-west-2:123456789012:training-job/my_job')
    rejects('MLModelSageMakerJobArn', 'arn:aws:sagemaker:us-west-2:acct:training-job/MyJob')
    rejects('MLModelSageMakerJobArn', 'arn:aws:sagemaker:us_west_2:123456789012:training-job/MyJob')
    rejects('MLModelSageMakerJobArn', 'xarn:aws:sagemaker:us-west-2:123456789012:training-job/MyJob')
    rejects('MLModelSageMakerJobArn', 'arn:aws:sagemaker:us-west-2:123456789012:training-job/MyJob/x')
    rejects('MLModelSageMakerJobArn', 'arn:aws:sagemaker:us-west-2:123456789012:model/MyJob')
    assert.equal(suggestJobArn('arn:aws:sagemaker:us-west-2:1:model/x'), undefined)
  })

  it('LocalInferenceServiceName: 2 to 63 characters, letters/digits/hyphens, not starting with a hyphen', () => {
    accepts('LocalInferenceServiceName', 'ab')
    accepts('LocalInferenceServiceName', `a${'b'.repeat(62)}`)
    accepts('LocalInferenceServiceName', '0-image-classification')
    assert.match(rejects('LocalInferenceServiceName', 'a'), /has 1 character; it needs at least 2/)
    assert.match(
      rejects('LocalInferenceServiceName', `a${'b'.repeat(63)}`),
      /has 64 characters; it may have at most 63/,
    )
    assert.match(rejects('LocalInferenceServiceName', '-ab'), /must start with a letter or a digit/)
    rejects('LocalInferenceServiceName', 'image_classification')
    rejects('LocalInferenceServiceName', 'image classification')
  })

  for (const name of ['LocalInferenceServiceTimeoutSeconds', 'LocalInferenceServiceMemoryLimitKB']) {
    it(`${name}: [1-9][0-9]* as a string (minimum 1); JSON numbers are told to be quoted`, () => {
      accepts(name, '1')
      accepts(name, '10')
      accepts(name, '9007199254740993')
      assert.match(rejects(name, '0'), /minimum is 1/)
      assert.match(rejects(name, '010'), /Use "10"/)
      assert.match(rejects(name, ' 10'), /Use "10"/)
      rejects(name, '-1')
      rejects(name, '1.5')
      rejects(name, '')
      assert.match(rejects(name, 10), new RegExp(`Quote it: "${name}": "10"`))
    })
  }

  it('GPUAcceleration: CPU or GPU on the JTX2 connector only; case mistakes get a hint', () => {
    accepts('GPUAcceleration', 'CPU', jtx2)
    accepts('GPUAcceleration', 'GPU', jtx2)
    assert.match(rejects('GPUAcceleration', 'gpu', jtx2), /Did you mean "GPU"/)
    rejects('GPUAcceleration', 'TPU', jtx2)
    assert.match(rejects('GPUAcceleration', undefined, jtx2), /GPUAcceleration is required/)
    assert.match(rejects('GPUAcceleration', 'GPU'), /applies only to the Image Classification Aarch64 JTX2 connector/)
  })

  it('MLFeedbackConnectorConfigId: version 2 only, optional, empty or a name', () => {
    accepts('MLFeedbackConnectorConfigId', '', x86v2)
    accepts('MLFeedbackConnectorConfigId', 'my-feedback-config', x86v2)
    rejects('MLFeedbackConnectorConfigId', 'x', x86v2)
    rejects('MLFeedbackConnectorConfigId', '-feedback', x86v2)
    assert.match(rejects('MLFeedbackConnectorConfigId', 'my-feedback'), /exists only in version 2/)
  })

  it('unknown parameters are rejected, misspellings get "did you mean"', () => {
    assert.match(
      rejects('LocalInferenceServiceTimeoutSecond', '10'),
      /Did you mean "LocalInferenceServiceTimeoutSeconds"/,
    )
    assert.match(rejects('modelDestinationPath', '/x'), /Unknown parameter "modelDestinationPath"/)
  })

  it('reports every problem at once and throws a ValidationError with exit code 2', () => {
    const params = {...VALID, LocalInferenceServiceName: 'a', LocalInferenceServiceTimeoutSeconds: 10}
    assert.throws(
      () => validateParameters(params, x86),
      (error: unknown) => {
        assert.ok(error instanceof ValidationError)
        assert.equal(error.exitCode, 2)
        assert.equal(error.problems.length, 2)
        assert.match(error.message, /LocalInferenceServiceName/)
        assert.match(error.message, /Quote it/)
        return true
      },
    )
    assert.match(parameterProblems('nope', x86)[0].message, /must be a JSON object/)
  })
})

describe('connector definition versions', () => {
  const entry = (over: Record<string, unknown> = {}) => ({
    ConnectorArn: 'arn:aws:greengrass:us-west-2::/connectors/ImageClassificationARMv7/versions/1',
    Id: 'MyImageClassificationConnector',
    Parameters: {...VALID},
    ...over,
  })

  it('accepts a valid version (also wrapped as InitialVersion) and passes other connectors through', () => {
    const other = {
      ConnectorArn: 'arn:aws:greengrass:us-west-2::/connectors/SNS/versions/1',
      Id: 'sns',
      Parameters: {DefaultSNSArn: 'arn:aws:sns:us-west-2:123456789012:topic'},
    }
    const parsed = parseDefinitionVersion({InitialVersion: {Connectors: [entry(), other]}})
    assert.equal(parsed.imageClassification.length, 1)
    assert.equal(parsed.imageClassification[0].connector.platform, 'armv7')
    assert.equal(parsed.otherConnectors, 1)
  })

  it('finds structural problems, parameter problems, placeholders and duplicates, all at once', () => {
    const doc = {
      Connectors: [
        entry({ConnectorArn: 'arn:aws:greengrass:region::/connectors/ImageClassificationARMv7/versions/1'}),
        entry({Parameters: {...VALID, GPUAcceleration: 'GPU'}}),
        entry({
          ConnectorArn: 'arn:aws:greengrass:us-west-2::/connectors/ImageClassificationARMv7/versions/3',
          Id: 'c3',
        }),
        {ConnectorArn: 'arn:aws:greengrass:us-west-2::/connectors/ImageClassificationx86-64/versions/1', Id: 'c 4'},
      ],
      Extra: true,
    }
    const {problems} = checkDefinitionVersion(doc)
    const paths = problems.map((p) => p.path)
    assert.ok(paths.includes('/Extra'), paths.join(','))
    assert.ok(paths.includes('/Connectors/0/ConnectorArn'), paths.join(','))
    assert.ok(problems.some((p) => /placeholder "region"/.test(p.message)))
    assert.ok(paths.includes('/Connectors/1/Id'), 'duplicate Id')
    assert.ok(paths.includes('/Connectors/1/Parameters/GPUAcceleration'))
    assert.ok(paths.includes('/Connectors/1/Parameters/LocalInferenceServiceName'), 'duplicate service name')
    assert.ok(problems.some((p) => p.path === '/Connectors/2/ConnectorArn' && /has no version 3/.test(p.message)))
    assert.ok(paths.includes('/Connectors/3/Id'), 'bad Id pattern')
    assert.ok(paths.includes('/Connectors/3/Parameters'), 'missing Parameters')
  })

  it('rejects a document without Connectors', () => {
    assert.throws(() => parseDefinitionVersion({connectors: []}), /Connectors is required/)
  })
})
