"""
Client side of the Greengrass IPC protocol (Lambda-invoke style HTTP on localhost), as the core's IPC daemon and
``icc serve --ipc-port`` answer it: POST work to /2016-11-01/functions/<function ARN>, then GET its result with the
X-Amz-InvocationId the POST returned.
"""

import json
import socket

try:  # Python 3
    import http.client as httplib
except ImportError:  # Python 2
    import httplib

from greengrass_machine_learning_sdk.exception import GreengrassDependencyException

IPC_API_VERSION = '2016-11-01'
HEADER_INVOCATION_ID = 'X-Amz-InvocationId'
HEADER_CLIENT_CONTEXT = 'X-Amz-Client-Context'
HEADER_AUTH_TOKEN = 'Authorization'
HEADER_INVOCATION_TYPE = 'X-Amz-Invocation-Type'
HEADER_FUNCTION_ERROR = 'X-Amz-Function-Error'


class WorkResult(object):
    """Result of a GET: the payload bytes and the function error type (None, 'Handled', 'Unhandled', ...)."""

    def __init__(self, payload, function_error):
        self.payload = payload
        self.function_error = function_error


def _error_message(payload):
    try:
        doc = json.loads(payload.decode('utf-8'))
        if isinstance(doc, dict):
            return doc.get('errorMessage') or doc.get('message'), doc.get('errorType')
    except (ValueError, UnicodeDecodeError, AttributeError):
        pass
    return None, None


class IPCClient(object):
    def __init__(self, host='localhost', port=8000, token='', timeout=None):
        self.host = host
        self.port = port
        self.token = token
        self.timeout = timeout

    def _path(self, function_arn):
        return '/{}/functions/{}'.format(IPC_API_VERSION, function_arn)

    def _request(self, method, function_arn, body, headers):
        headers = dict(headers)
        headers[HEADER_AUTH_TOKEN] = self.token
        conn = httplib.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            try:
                conn.request(method, self._path(function_arn), body, headers)
                response = conn.getresponse()
                payload = response.read()
            except (socket.error, httplib.HTTPException) as e:
                raise GreengrassDependencyException(
                    'cannot reach the Greengrass IPC endpoint at {}:{}: {}'.format(self.host, self.port, e)
                )
        finally:
            conn.close()
        if response.status < 200 or response.status >= 300:
            message, error_type = _error_message(payload)
            raise GreengrassDependencyException(
                'Greengrass IPC {} {} failed with HTTP {} {}{}'.format(
                    method,
                    function_arn,
                    response.status,
                    response.reason,
                    ': {}'.format(message) if message else '',
                ),
                status=response.status,
                error_type=error_type,
            )
        return response, payload

    def post_work(self, function_arn, body, client_context, invocation_type='RequestResponse'):
        response, _ = self._request(
            'POST',
            function_arn,
            body or b'',
            {
                HEADER_CLIENT_CONTEXT: client_context,
                HEADER_INVOCATION_TYPE: invocation_type,
                'Content-Type': 'application/octet-stream',
            },
        )
        invocation_id = response.getheader(HEADER_INVOCATION_ID)
        if not invocation_id:
            raise GreengrassDependencyException(
                'the Greengrass IPC endpoint accepted the work for {} but sent no {}'.format(
                    function_arn, HEADER_INVOCATION_ID
                )
            )
        return invocation_id

    def get_work_result(self, function_arn, invocation_id):
        response, payload = self._request('GET', function_arn, None, {HEADER_INVOCATION_ID: invocation_id})
        return WorkResult(payload, response.getheader(HEADER_FUNCTION_ERROR))
