"""
The 'inference' client: ``invoke_inference_service(AlgoType=, ServiceName=, ContentType=, Body=, Accept=)``.

Returns a dict like the connector's reply, ``{'Body': StreamingBody, 'ContentType': 'application/json'}``, where
``resp['Body'].read()`` gives the bytes ``[0.3,0.1,...]``. Raises GreengrassInferenceException when the service
rejects the request and GreengrassDependencyException when it cannot be reached or used.
"""

import base64
import json
import os
import re
from io import BytesIO

from greengrass_machine_learning_sdk import util
from greengrass_machine_learning_sdk.exception import (
    GreengrassDependencyException,
    GreengrassInferenceException,
)
from greengrass_machine_learning_sdk.ipc import IPCClient, _error_message

ALGO_TYPE = 'AlgoType'
SERVICE_NAME = 'ServiceName'
BODY = 'Body'
CONTENT_TYPE = 'ContentType'
ACCEPT = 'Accept'

NAME_REGEX = '^[a-zA-Z0-9][a-zA-Z0-9-]{1,62}$'
algo_type_pattern = re.compile(NAME_REGEX)
service_name_pattern = re.compile(NAME_REGEX)

try:
    _STRING_TYPES = (str, unicode)  # noqa: F821 (Python 2)
except NameError:
    _STRING_TYPES = (str,)


def _required(kwargs, name):
    if name not in kwargs or kwargs[name] is None:
        raise ValueError(
            '{} argument of Inference.Client.invoke_inference_service is a required argument but was not '
            'provided'.format(name)
        )
    return kwargs[name]


def _string(kwargs, name):
    value = kwargs.get(name)
    if value is not None and not isinstance(value, _STRING_TYPES):
        raise ValueError(
            '{} argument of Inference.Client.invoke_inference_service must be a string, not {}'.format(
                name, type(value).__name__
            )
        )
    return value


class StreamingBody(object):
    """The reply body as a readable stream (the interface boto3 gives SageMaker replies)."""

    def __init__(self, payload):
        self._raw_stream = BytesIO(payload)
        self._amount_read = 0

    def read(self, amt=None):
        chunk = self._raw_stream.read(amt)
        self._amount_read += len(chunk)
        return chunk

    def close(self):
        self._raw_stream.close()

    def __repr__(self):
        return '<StreamingBody read={}>'.format(self._amount_read)


class Client(object):
    def __init__(self, environ=None):
        env = os.environ if environ is None else environ
        util.validate_required_gg_interface(env)
        self._env = env
        self._ipc = IPCClient(port=util.daemon_port(env), token=util.auth_token(env))

    def invoke_inference_service(self, **kwargs):
        """
        AlgoType: 'image-classification'; ServiceName: the connector's LocalInferenceServiceName;
        ContentType: 'image/jpeg' or 'image/png'; Body: the image bytes; Accept: optional reply type.
        """
        aws_region = self._env.get('AWS_REGION')
        if not aws_region:
            raise GreengrassDependencyException(
                'AWS_REGION is not set; the Lambda environment must name the core\'s region '
                '(icc serve --print-env prints it)'
            )
        service_name = _required(kwargs, SERVICE_NAME)
        body = _required(kwargs, BODY)
        algo_type = _required(kwargs, ALGO_TYPE)
        _string(kwargs, SERVICE_NAME)
        _string(kwargs, ALGO_TYPE)
        if not algo_type_pattern.match(algo_type):
            raise ValueError('field algo_type must match the regex {}'.format(NAME_REGEX))
        if not service_name_pattern.match(service_name):
            raise ValueError('field service_name must match the regex {}'.format(NAME_REGEX))
        if isinstance(body, (bytearray, memoryview)):
            body = bytes(body)
        if not isinstance(body, bytes):
            raise ValueError(
                'Body argument of Inference.Client.invoke_inference_service must be bytes (the image file '
                'content, e.g. open(path, \'rb\').read()), not {}'.format(type(body).__name__)
            )

        custom = {}
        if kwargs.get(CONTENT_TYPE) is not None:
            custom['Content-Type'] = _string(kwargs, CONTENT_TYPE)
        if kwargs.get(ACCEPT) is not None:
            custom['Accept'] = _string(kwargs, ACCEPT)
        context = base64.b64encode(json.dumps({'custom': custom}).encode('utf-8')).decode('ascii')

        address = 'arn:aws:lambda:{}:aws:function:GG-ML-INF-{}-{}'.format(aws_region, algo_type, service_name)
        invocation_id = self._ipc.post_work(address, body, context)
        result = self._ipc.get_work_result(address, invocation_id)

        if result.function_error == 'Handled':
            message, error_type = _error_message(result.payload)
            raise GreengrassInferenceException(
                message or result.payload.decode('utf-8', 'replace'), error_type=error_type, payload=result.payload
            )
        if result.function_error:
            message, error_type = _error_message(result.payload)
            raise GreengrassDependencyException(
                '{} error from {}: {}'.format(result.function_error, address, message or 'no details'),
                error_type=error_type,
            )
        try:
            resp = json.loads(result.payload.decode('utf-8'))
            body_text = resp[BODY]
        except (ValueError, KeyError, TypeError, UnicodeDecodeError):
            raise GreengrassDependencyException(
                'the inference service {} sent a reply that is not {{"Body": ..., "ContentType": ...}}'.format(
                    service_name
                )
            )
        resp[BODY] = StreamingBody(body_text.encode('utf-8'))
        return resp
