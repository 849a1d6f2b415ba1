from mend_common.uow import SqlUnitOfWork

from ..adapters.repository import SqlSchedulingRepository


class SchedulingUnitOfWork(SqlUnitOfWork):
    def open_repositories(self, conn):
        self.repo = SqlSchedulingRepository(conn)
