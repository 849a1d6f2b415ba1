from mend_common.uow import ChainedUnitOfWork, SqlUnitOfWork

from ..adapters.repository import ChainedCaseWrites, SqlCaseRepository


class CasesUnitOfWork(SqlUnitOfWork):
    def open_repositories(self, conn):
        self.cases = SqlCaseRepository(conn)


class CasesChainedUnitOfWork(ChainedUnitOfWork):
    def open_repositories(self, chain):
        self.cases = ChainedCaseWrites(chain)
