from mend_common.uow import SqlUnitOfWork

from ..adapters.repository import SqlCaseRepository


class CasesUnitOfWork(SqlUnitOfWork):
    def open_repositories(self, conn):
        self.cases = SqlCaseRepository(conn)
