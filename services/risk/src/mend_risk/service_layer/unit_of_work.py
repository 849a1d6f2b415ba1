from mend_common.uow import SqlUnitOfWork

from ..adapters.repository import SqlAssessmentRepository


class RiskUnitOfWork(SqlUnitOfWork):
    def open_repositories(self, conn):
        self.assessments = SqlAssessmentRepository(conn)
