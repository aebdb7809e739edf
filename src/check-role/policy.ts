/**
 * An offline evaluator for IAM identity policies: does a set of policy documents allow one action on one
 * resource?
 *
 * It implements the part of IAM's evaluation logic that can be decided from the documents alone: `Effect`
 * Allow/Deny, `Action`/`NotAction`, `Resource`/`NotResource`, `*` and `?` wildcards, case-insensitive action
 * names, case-sensitive resource ARNs, string-or-array fields, a single statement object or an array, and
 * "an explicit deny always wins". Statements with a `Condition` (or policy variables such as `${aws:username}`
 * in a resource) depend on request context that only AWS knows; when such a statement would change the answer,
 * the result is `undecided` ("cannot decide offline") and names the statements that made it so.
 *
 * `icc check-role` uses it as the fallback when IAM's own policy simulator is not allowed, and for
 * `--policy-file`.
 */
import {ValidationError, type ValidationProblem} from '../errors.js'

export type PolicyDecision = 'allowed' | 'explicitDeny' | 'implicitDeny' | 'undecided'

/** A named policy document, as text (JSON, possibly URL-encoded as IAM returns it) or already parsed. */
export interface PolicySource {
  document: unknown
  /** Where it came from: a managed policy ARN, an inline policy name, a file name. */
  name: string
}

/** A statement that matched the request. */
export interface MatchedStatement {
  /** True when the statement has a Condition or a policy variable that cannot be evaluated offline. */
  conditional: boolean
  effect: 'Allow' | 'Deny'
  /** Position of the statement in its policy (0-based). */
  index: number
  policyName: string
  sid?: string
}

export interface PolicyEvaluation {
  action: string
  decision: PolicyDecision
  /** The statements that decided the result (for `undecided`: the conditional ones that would matter). */
  deciding: MatchedStatement[]
  /** Every statement that matched action and resource. */
  matched: MatchedStatement[]
  /** One sentence saying why. */
  reason: string
  resource: string
}

interface Statement {
  Action?: unknown
  Condition?: unknown
  Effect?: unknown
  NotAction?: unknown
  NotResource?: unknown
  Resource?: unknown
  Sid?: unknown
}

/** Render a statement reference as `policy#Sid` or `policy#statement[2]`. */
export function describeStatement(s: MatchedStatement): string {
  return `${s.policyName}#${s.sid ?? `statement[${s.index}]`}`
}

/** Turn an IAM wildcard pattern (`*`, `?`) into an anchored regular expression. */
export function wildcardToRegExp(pattern: string, caseInsensitive: boolean): RegExp {
  let source = ''
  for (const ch of pattern) {
    if (ch === '*') source += '.*'
    else if (ch === '?') source += '.'
    else source += ch.replaceAll(/[$()+.[\\\]^{|}]/g, String.raw`\$&`)
  }

  return new RegExp(`^${source}$`, caseInsensitive ? 'is' : 's')
}

function toList(value: unknown): unknown[] {
  if (value === undefined) return []
  return Array.isArray(value) ? value : [value]
}

/** A policy document given as text (plain or URL-encoded JSON, as IAM returns it) as a value; objects as they are. */
function policyValue(document: unknown, name: string): unknown {
  let doc = document
  if (typeof doc === 'string') {
    let text = doc.trim()
    if (text.startsWith('%7B') || text.startsWith('%7b')) {
      try {
        text = decodeURIComponent(text)
      } catch {
        // keep the text as is; JSON.parse reports the problem
      }
    }

    try {
      doc = JSON.parse(text)
    } catch (error) {
      throw new ValidationError(`Policy ${name} is not valid JSON.`, [
        {message: (error as Error).message, path: '/', suggestion: 'Fix the JSON syntax of the policy document.'},
      ])
    }
  }

  return doc
}

/** Parse a policy document given as text (plain or URL-encoded JSON) or an object. */
export function parsePolicyDocument(document: unknown, name: string): {Statement: Statement[]} {
  const doc = policyValue(document, name)
  const problems: ValidationProblem[] = []
  if (!doc || typeof doc !== 'object' || Array.isArray(doc)) {
    throw new ValidationError(`Policy ${name} is not a policy document.`, [
      {message: 'expected a JSON object with a "Statement"', path: '/'},
    ])
  }

  const raw = (doc as {Statement?: unknown}).Statement
  if (raw === undefined) problems.push({message: 'missing "Statement"', path: '/Statement'})
  const statements = toList(raw) as Statement[]
  for (const [i, s] of statements.entries()) {
    const at = Array.isArray(raw) ? `/Statement/${i}` : '/Statement'
    if (!s || typeof s !== 'object') {
      problems.push({message: 'a statement must be an object', path: at})
      continue
    }

    if (s.Effect !== 'Allow' && s.Effect !== 'Deny') {
      problems.push({
        message: `Effect must be "Allow" or "Deny", got ${JSON.stringify(s.Effect)}`,
        path: `${at}/Effect`,
      })
    }

    if ((s.Action === undefined) === (s.NotAction === undefined)) {
      problems.push({message: 'a statement needs exactly one of "Action" or "NotAction"', path: at})
    }

    if ((s.Resource === undefined) === (s.NotResource === undefined)) {
      problems.push({message: 'a statement needs exactly one of "Resource" or "NotResource"', path: at})
    }

    for (const key of ['Action', 'NotAction', 'Resource', 'NotResource'] as const) {
      if (s[key] !== undefined && toList(s[key]).some((v) => typeof v !== 'string')) {
        problems.push({message: `"${key}" must be a string or an array of strings`, path: `${at}/${key}`})
      }
    }
  }

  if (problems.length > 0) throw new ValidationError(`Policy ${name} is not a valid IAM policy.`, problems)
  return {Statement: statements}
}

function matchesAny(patterns: unknown, value: string, caseInsensitive: boolean): boolean {
  // A policy variable (`${aws:username}`) could stand for anything: match it like `*` (the statement is then
  // reported as conditional).
  return toList(patterns).some((p) =>
    wildcardToRegExp(String(p).replaceAll(/\$\{[^}]*\}/g, '*'), caseInsensitive).test(value),
  )
}

function statementMatches(s: Statement, action: string, resource: string): boolean {
  const actionOk = s.Action === undefined ? !matchesAny(s.NotAction, action, true) : matchesAny(s.Action, action, true)
  if (!actionOk) return false
  return s.Resource === undefined
    ? !matchesAny(s.NotResource, resource, false)
    : matchesAny(s.Resource, resource, false)
}

function hasPolicyVariable(s: Statement): boolean {
  return [...toList(s.Resource), ...toList(s.NotResource)].some((r) => String(r).includes('${'))
}

/**
 * Evaluate `action` on `resource` against every statement of every policy.
 *
 * Order of the decision: an unconditional matching Deny → explicitDeny; a conditional matching Deny → undecided
 * when something allows the request (otherwise the request is denied anyway); an unconditional matching Allow →
 * allowed; a conditional matching Allow → undecided; nothing → implicitDeny.
 */
export function evaluatePolicies(sources: PolicySource[], action: string, resource: string): PolicyEvaluation {
  const matched: MatchedStatement[] = []
  for (const source of sources) {
    const doc = parsePolicyDocument(source.document, source.name)
    for (const [index, s] of doc.Statement.entries()) {
      if (!statementMatches(s, action, resource)) continue
      matched.push({
        conditional: s.Condition !== undefined || hasPolicyVariable(s),
        effect: s.Effect as 'Allow' | 'Deny',
        index,
        policyName: source.name,
        ...(typeof s.Sid === 'string' && s.Sid ? {sid: s.Sid} : {}),
      })
    }
  }

  const pick = (effect: 'Allow' | 'Deny', conditional: boolean) =>
    matched.filter((m) => m.effect === effect && m.conditional === conditional)
  const hardDeny = pick('Deny', false)
  const softDeny = pick('Deny', true)
  const hardAllow = pick('Allow', false)
  const softAllow = pick('Allow', true)
  const base = {action, matched, resource}
  const list = (ms: MatchedStatement[]) => ms.map((m) => describeStatement(m)).join(', ')

  if (hardDeny.length > 0) {
    return {...base, decision: 'explicitDeny', deciding: hardDeny, reason: `explicitly denied by ${list(hardDeny)}`}
  }

  if (softDeny.length > 0 && hardAllow.length + softAllow.length > 0) {
    return {
      ...base,
      decision: 'undecided',
      deciding: softDeny,
      reason: `cannot decide offline: ${list(softDeny)} may deny it depending on its Condition`,
    }
  }

  if (hardAllow.length > 0) {
    return {...base, decision: 'allowed', deciding: hardAllow, reason: `allowed by ${list(hardAllow)}`}
  }

  if (softAllow.length > 0) {
    return {
      ...base,
      decision: 'undecided',
      deciding: softAllow,
      reason: `cannot decide offline: only ${list(softAllow)} would allow it, depending on its Condition`,
    }
  }

  return {
    ...base,
    decision: 'implicitDeny',
    deciding: softDeny,
    reason:
      softDeny.length > 0
        ? `no statement allows it (and ${list(softDeny)} may also deny it)`
        : 'no statement allows it (implicit deny)',
  }
}

/** A policy that allows exactly one action on exactly the given resources. */
export function grantPolicy(
  action: string,
  resource: string | string[],
): {Statement: {Action: string[]; Effect: 'Allow'; Resource: string | string[]}[]; Version: '2012-10-17'} {
  return {Statement: [{Action: [action], Effect: 'Allow', Resource: resource}], Version: '2012-10-17'}
}

/** The inline policy `icc check-role --fix` adds: exactly one action on exactly one training job. */
export function describeTrainingJobPolicy(jobArn: string): ReturnType<typeof grantPolicy> {
  return grantPolicy('sagemaker:DescribeTrainingJob', jobArn)
}

/**
 * The inline policy `icc check-role --fix` puts on a role that may already carry it (for other jobs, other
 * artifacts, other actions): the resources are added to the Resource list of its statement for `action` (an
 * unconditional Allow of exactly that action), every other grant and statement kept, so fixing job B never revokes
 * job A, and an S3 grant never revokes a SageMaker one. `changed` is false when every resource is already in it.
 */
export function addGrantToFixPolicy(
  existing: unknown,
  action: string,
  resources: string[],
): {changed: boolean; policy: unknown} {
  const single = (list: string[]) => (list.length === 1 ? list[0] : list)
  if (existing === undefined) return {changed: true, policy: grantPolicy(action, single(resources))}
  const original = policyValue(existing, 'the existing icc policy') as Record<string, unknown>
  const doc = parsePolicyDocument(original, 'the existing icc policy')
  const isOurs = (st: Statement) => {
    const actions = toList(st.Action)
    return (
      st.Effect === 'Allow' &&
      st.Condition === undefined &&
      st.Resource !== undefined &&
      actions.length === 1 &&
      String(actions[0]).toLowerCase() === action.toLowerCase()
    )
  }

  const statements = doc.Statement.map((st) => ({...st}))
  const ours = statements.find((st) => isOurs(st))
  const have = ours ? toList(ours.Resource) : []
  const missing = resources.filter((r, i) => !have.includes(r) && resources.indexOf(r) === i)
  if (missing.length === 0) return {changed: false, policy: original}
  if (ours) ours.Resource = [...have, ...missing]
  else statements.push(grantPolicy(action, single(missing)).Statement[0])
  return {changed: true, policy: {Version: '2012-10-17', ...original, Statement: statements}}
}
