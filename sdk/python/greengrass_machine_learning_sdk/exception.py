"""
Exceptions of the Greengrass Machine Learning SDK.

GreengrassInferenceException: the inference service ran and rejected the request (bad image, unsupported content
type, timeout, memory limit). GreengrassDependencyException: the service could not be reached or used (no IPC
endpoint, wrong token, unknown service, service not ready).
"""


class GreengrassInferenceException(Exception):
    """The local inference service reported a handled error for this request."""

    def __init__(self, message, error_type=None, payload=None):
        super(GreengrassInferenceException, self).__init__(message)
        self.error_type = error_type
        self.payload = payload


class GreengrassDependencyException(Exception):
    """Greengrass (the IPC endpoint) or the inference service could not handle the call."""

    def __init__(self, message, status=None, error_type=None):
        super(GreengrassDependencyException, self).__init__(message)
        self.status = status
        self.error_type = error_type
