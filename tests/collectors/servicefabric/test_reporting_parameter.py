"""ReportingClientCertificateThumbprint (ReportingBootstrapperPkg, section ReportingServices) is the reporting certificate."""

from __future__ import annotations

import pytest

from collectors.servicefabric import api


@pytest.mark.parametrize(
    "name",
    ["ReportingClientCertificateThumbprint", "ReportingServices_ReportingClientCertificateThumbprint"],
)
def test_regression_the_reporting_client_thumbprint_is_read(name: str) -> None:
    assert api.parameter_role(name, api.DEFAULT_PARAMETER_ROLES) == "ReportingService"
