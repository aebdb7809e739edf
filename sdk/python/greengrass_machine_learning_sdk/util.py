"""Environment checks of the Greengrass Machine Learning SDK (interface version, IPC address, token)."""

import os

# The interface version this SDK needs: the core must announce 1.x with x >= 2.
SDK_INTERFACE_MAJOR = 1
SDK_INTERFACE_MINOR = 2

DEFAULT_DAEMON_PORT = 8000


def _incompatible(detail):
    return ValueError(
        'There was a version incompatibility between the Greengrass Machine Learning SDK used by your function '
        'and the Greengrass Core ({}). GGC_MAX_INTERFACE_VERSION must be {}.x with x >= {}; icc serve --print-env '
        'prints the right environment.'.format(detail, SDK_INTERFACE_MAJOR, SDK_INTERFACE_MINOR)
    )


def validate_required_gg_interface(environ=None):
    env = os.environ if environ is None else environ
    value = env.get('GGC_MAX_INTERFACE_VERSION')
    if not value:
        raise _incompatible('GGC_MAX_INTERFACE_VERSION is not set')
    parts = value.strip().split('.')
    try:
        major = int(parts[0])
        minor = int(parts[1]) if len(parts) > 1 else 0
    except ValueError:
        raise _incompatible('GGC_MAX_INTERFACE_VERSION={!r} is not a version'.format(value))
    if major != SDK_INTERFACE_MAJOR or minor < SDK_INTERFACE_MINOR:
        raise _incompatible('GGC_MAX_INTERFACE_VERSION={}'.format(value))


def daemon_port(environ=None):
    env = os.environ if environ is None else environ
    value = env.get('GG_DAEMON_PORT')
    if not value:
        return DEFAULT_DAEMON_PORT
    try:
        port = int(value)
    except ValueError:
        port = -1
    if port < 1 or port > 65535:
        raise ValueError('GG_DAEMON_PORT={!r} is not a TCP port (1-65535)'.format(value))
    return port


def auth_token(environ=None):
    env = os.environ if environ is None else environ
    return env.get('AWS_CONTAINER_AUTHORIZATION_TOKEN', '')
