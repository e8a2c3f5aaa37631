defmodule ObjectStoreX.FaultTest do
  # ObjectStoreX.Fault: every rule kind through the public API, on every backend the suite can
  # reach for it, with what the calls record says ran.
  use ExUnit.Case, async: true

  alias ObjectStoreX.{Error, Fault, TestBackends, TestHelpers}
  alias ObjectStoreX.Stream, as: OSXStream

  @mib 1_048_576
  @part 5 * @mib

  defp wrap!(store, rules), do: Fault.wrap!(store, rules)
  defp ops(store), do: Enum.map(Fault.calls!(store), & &1.op)

  # 16 chunks of 1 MiB + 1 byte: three full 5 MiB parts and a short fourth.
  defp chunks, do: for(_ <- 1..16, do: :crypto.strong_rand_bytes(@mib + 1))

  for backend <- [:memory, :local, :s3] do
    describe "on #{backend}" do
      if backend == :s3, do: @describetag(backend: :s3)

      setup do
        {:ok, store: TestBackends.store!(unquote(backend))}
      end

      test "the nth put fails with the chosen reason and retryability", %{store: store} do
        faulty = wrap!(store, fail: [op: :put, nth: 2, reason: :timeout, retryable: false])

        assert :ok = ObjectStoreX.put(faulty, "a", "1")

        assert {:error, %Error{reason: :timeout, retryable: false, message: message}} =
                 ObjectStoreX.put(faulty, "a", "2")

        assert message =~ "rule 1"
        assert :ok = ObjectStoreX.put(faulty, "a", "3")
        # the failed put never reached the store
        assert ObjectStoreX.get!(store, "a") == "3"

        assert Fault.calls!(faulty) == [
                 %{op: :put, path: "a", outcome: :ok},
                 %{op: :put, path: "a", outcome: {:fault, :timeout}},
                 %{op: :put, path: "a", outcome: :ok}
               ]
      end

      test "each operation can fail, through the function that performs it", %{store: store} do
        :ok = ObjectStoreX.put(store, "src", "data")

        cases = [
          {:get, :permission_denied, fn s -> ObjectStoreX.get(s, "src") end},
          {:head, :unauthenticated, fn s -> ObjectStoreX.head(s, "src") end},
          {:list, :network_error, fn s -> ObjectStoreX.list(s) end},
          {:list, :internal, fn s -> ObjectStoreX.list_with_delimiter(s) end},
          {:delete, :permission_denied, fn s -> ObjectStoreX.delete(s, "src") end},
          {:copy, :already_exists, fn s -> ObjectStoreX.copy(s, "src", "dst") end},
          {:rename, :precondition_failed, fn s -> ObjectStoreX.rename(s, "src", "dst") end},
          {:put, :not_supported, fn s -> ObjectStoreX.put(s, "p", "x") end},
          {:create_multipart, :generic,
           fn s -> OSXStream.upload(chunks(), s, "mp", part_size: @part) end}
        ]

        for {op, reason, call} <- cases do
          faulty = wrap!(store, fail: [op: op, reason: reason])
          assert {:error, %Error{reason: ^reason}} = call.(faulty), "#{op}"
          assert [%{op: ^op, outcome: {:fault, ^reason}} | _] = Fault.calls!(faulty)
        end

        # nothing above reached the store
        assert ObjectStoreX.get!(store, "src") == "data"
        assert {:error, %Error{reason: :not_found}} = ObjectStoreX.head(store, "dst")
      end

      test "a path glob limits a rule, which then fires every time", %{store: store} do
        faulty =
          wrap!(store, fail: [op: :get, path: "logs/**/*.gz", reason: :not_found, times: :always])

        for path <- ["logs/a/b/x.gz", "logs/x.gz", "logs/a/x.txt", "data/x.gz"],
            do: :ok = ObjectStoreX.put(faulty, path, "x")

        for _ <- 1..3 do
          assert {:error, %Error{reason: :not_found}} = ObjectStoreX.get(faulty, "logs/a/b/x.gz")
          assert {:error, %Error{reason: :not_found}} = ObjectStoreX.get(faulty, "logs/x.gz")
        end

        assert {:ok, "x", _} = ObjectStoreX.get(faulty, "logs/a/x.txt")
        assert {:ok, "x", _} = ObjectStoreX.get(faulty, "data/x.gz")
      end

      test "a rule fires on the nth call and the times - 1 after it", %{store: store} do
        faulty = wrap!(store, fail: [op: [:put, :head], nth: 2, times: 3])

        results =
          for i <- 1..6 do
            if rem(i, 2) == 1,
              do: ObjectStoreX.put(faulty, "k", "v"),
              else: ObjectStoreX.head(faulty, "k")
          end

        assert [:ok, {:error, _}, {:error, _}, {:error, _}, :ok, {:ok, _}] = results
      end

      test "latency delays the matching calls only", %{store: store} do
        faulty = wrap!(store, latency: [ms: 2_000, op: :head])
        :ok = ObjectStoreX.put(faulty, "k", "v")

        head = Task.async(fn -> :timer.tc(fn -> ObjectStoreX.head(faulty, "k") end) end)
        # Not delayed: it completes within its own timeout, far below the head's delay, while
        # the head is still waiting.
        assert {:ok, "v", _} = ObjectStoreX.get(faulty, "k", timeout: 1_000)
        assert Task.yield(head, 0) == nil

        {head_us, {:ok, _}} = Task.await(head)
        assert head_us >= 2_000_000
      end

      test "latency and failures combine; the first failing rule decides", %{store: store} do
        faulty =
          wrap!(store,
            latency: [ms: 100],
            fail: [op: :get, reason: :timeout],
            fail: [op: :get, reason: :not_found, times: 2]
          )

        :ok = ObjectStoreX.put(faulty, "k", "v")
        {us, result} = :timer.tc(fn -> ObjectStoreX.get(faulty, "k") end)
        assert {:error, %Error{reason: :timeout, retryable: true}} = result
        assert us >= 100_000
        # the second rule counted that call too: this is its second and last
        assert {:error, %Error{reason: :not_found}} = ObjectStoreX.get(faulty, "k")
        assert {:ok, "v", _} = ObjectStoreX.get(faulty, "k")
      end

      test "a cut body fails get/3 with the cut's error", %{store: store} do
        faulty = wrap!(store, cut_body: [after: 1000])
        data = :crypto.strong_rand_bytes(4000)
        :ok = ObjectStoreX.put(faulty, "cut.bin", data)

        assert {:error, %Error{reason: :network_error, retryable: true}} =
                 ObjectStoreX.get(faulty, "cut.bin")

        # a range that ends before the cut is not touched, and is not counted
        assert {:ok, piece, _} = ObjectStoreX.get(faulty, "cut.bin", range: {0, 999})
        assert piece == binary_part(data, 0, 1000)

        assert [_put, %{op: :get, outcome: {:fault, :network_error}}, %{outcome: :ok}] =
                 Fault.calls!(faulty)
      end

      test "a download whose body is always cut raises the error", %{store: store} do
        data = :crypto.strong_rand_bytes(3 * @mib)
        :ok = ObjectStoreX.put(store, "d.bin", data)
        faulty = wrap!(store, cut_body: [after: @mib, times: :always, reason: :timeout])

        error =
          assert_raise Error, fn ->
            OSXStream.download(faulty, "d.bin", chunk_size: 256 * 1024) |> Stream.run()
          end

        assert error.reason == :timeout
        # the first GET and the resumptions, all cut
        assert [%{op: :get} | _] = gets = Fault.calls!(faulty)
        assert length(gets) > 1
        assert Enum.all?(gets, &(&1.outcome == {:fault, :timeout}))
      end

      test "a download whose body is cut once resumes past the cut", %{store: store} do
        data = :crypto.strong_rand_bytes(3 * @mib)
        :ok = ObjectStoreX.put(store, "d.bin", data)
        faulty = wrap!(store, cut_body: [after: @mib + 17])

        downloaded = OSXStream.download(faulty, "d.bin", chunk_size: 256 * 1024) |> Enum.join()

        assert downloaded == data

        assert [%{op: :get, outcome: {:fault, :network_error}}, %{op: :get, outcome: :ok}] =
                 Fault.calls!(faulty)
      end

      test "part 3 failing aborts the upload, and the calls show it", %{store: store} do
        faulty = wrap!(store, fail: [op: :put_part, part: 3, reason: :timeout])

        assert {:error, %Error{reason: :timeout}} =
                 OSXStream.upload(chunks(), faulty, "big.bin", part_size: @part)

        calls = Fault.calls!(faulty)
        assert [%{op: :create_multipart, path: "big.bin", outcome: :ok} | _] = calls

        assert Enum.any?(
                 calls,
                 &match?(%{op: :put_part, part: 3, outcome: {:fault, :timeout}}, &1)
               )

        assert %{op: :abort_multipart, path: "big.bin", outcome: :ok} = List.last(calls)
        refute Enum.any?(calls, &(&1.op == :complete_multipart))
        assert {:error, %Error{reason: :not_found}} = ObjectStoreX.head(store, "big.bin")
      end

      test "a failed completion aborts the upload, whatever drives it", %{store: store} do
        :ok = ObjectStoreX.put(store, "source.bin", chunks())

        uploads = [
          fn s -> OSXStream.upload(chunks(), s, "out.bin", part_size: @part) end,
          fn s -> ObjectStoreX.transfer(store, "source.bin", s, "out.bin", part_size: @part) end
        ]

        for upload <- uploads do
          faulty = wrap!(store, fail: [op: :complete_multipart, reason: :internal])
          assert {:error, %Error{reason: :internal}} = upload.(faulty)

          # the HEAD is the library checking whether the completion was applied all the same
          assert [
                   :create_multipart,
                   :put_part,
                   :put_part,
                   :put_part,
                   :put_part,
                   :complete_multipart,
                   :head,
                   :abort_multipart
                 ] = ops(faulty)

          assert {:error, %Error{reason: :not_found}} = ObjectStoreX.head(store, "out.bin")
        end
      end

      test "an abort that fails too is reported with the first error", %{store: store} do
        faulty =
          wrap!(store,
            fail: [op: :put_part, part: 2, reason: :network_error],
            fail: [op: :abort_multipart, reason: :permission_denied]
          )

        assert {:error, %Error{reason: :network_error, message: message}} =
                 OSXStream.upload(chunks(), faulty, "big.bin", part_size: @part)

        assert message =~ "aborting the multipart upload failed too"

        assert %{op: :abort_multipart, outcome: {:fault, :permission_denied}} =
                 List.last(Fault.calls!(faulty))
      end

      test "delete_many accounts for the paths a rule fails, in order", %{store: store} do
        paths = for i <- 1..6, do: "del/#{i}"
        for p <- paths, do: :ok = ObjectStoreX.put(store, p, p)
        faulty = wrap!(store, fail: [op: :delete, path: "del/[24]", reason: :permission_denied])
        # "[" is literal in globs: the rule above matches nothing
        assert {:ok, 6, []} = ObjectStoreX.delete_many(faulty, paths)

        for p <- paths, do: :ok = ObjectStoreX.put(store, p, p)
        faulty = wrap!(store, fail: [op: :delete, nth: 2, times: 2, reason: :permission_denied])
        assert {:ok, 4, failed} = ObjectStoreX.delete_many(faulty, paths)

        assert [{"del/2", %Error{reason: :permission_denied}}, {"del/3", %Error{}}] =
                 Enum.sort(failed)

        assert Enum.map(Fault.calls!(faulty), & &1.path) == paths
        assert ObjectStoreX.get!(store, "del/2") == "del/2"
        assert {:error, %Error{reason: :not_found}} = ObjectStoreX.head(store, "del/1")
      end

      test "a listing stream fails with the rule's error", %{store: store} do
        faulty = wrap!(store, fail: [op: :list, reason: :timeout])
        :ok = ObjectStoreX.put(faulty, "l/a", "a")

        assert %Error{reason: :timeout} =
                 assert_raise(Error, fn ->
                   OSXStream.list_stream(faulty, prefix: "l") |> Enum.to_list()
                 end)

        assert [%{location: "l/a"}] = OSXStream.list_stream(faulty, prefix: "l") |> Enum.to_list()

        assert [
                 _put,
                 %{op: :list, path: "l", outcome: {:fault, :timeout}},
                 %{op: :list, outcome: :ok}
               ] = Fault.calls!(faulty)
      end

      test "the wrapped store's errors are recorded as its own", %{store: store} do
        faulty = wrap!(store, [])
        assert {:error, %Error{reason: :not_found}} = ObjectStoreX.get(faulty, "missing")

        assert [%{op: :get, path: "missing", outcome: {:error, :not_found}}] =
                 Fault.calls!(faulty)
      end
    end
  end

  describe "wrapping keeps the store's nature" do
    test "its prefix: paths are relative to it, objects land under it" do
      base = TestBackends.store!(:memory)
      {:ok, scoped} = ObjectStoreX.new(:memory, prefix: "p/q")
      faulty = wrap!(scoped, fail: [op: :get, path: "a", reason: :not_found])

      assert %ObjectStoreX.Store{backend: :memory, prefix: "p/q"} = faulty
      assert inspect(faulty) =~ "fault: true"
      :ok = ObjectStoreX.put(faulty, "a", "1")
      assert ObjectStoreX.get!(scoped, "a") == "1"
      assert {:error, %Error{reason: :not_found}} = ObjectStoreX.get(faulty, "a")
      assert [%{path: "a"}, %{path: "a"}] = Fault.calls!(faulty)
      refute base == faulty
    end

    test "a wrapped fault store has its own rules and record" do
      inner = wrap!(ObjectStoreX.new!(:memory), fail: [op: :put, nth: 2])
      outer = wrap!(inner, fail: [op: :put, nth: 3])
      assert :ok = ObjectStoreX.put(outer, "k", "1")
      assert {:error, _} = ObjectStoreX.put(outer, "k", "2")
      assert {:error, _} = ObjectStoreX.put(outer, "k", "3")
      # the outer store failed the third put; the inner store only saw two
      assert length(Fault.calls!(outer)) == 3
      assert [%{outcome: :ok}, %{outcome: {:fault, :generic}}] = Fault.calls!(inner)
    end

    @tag backend: :s3
    test "an S3 store still signs URLs, and a failed part leaves no upload on the server" do
      store = TestBackends.store!(:s3)
      faulty = wrap!(store, fail: [op: :put_part, part: 3, reason: :timeout])
      assert {:ok, url} = ObjectStoreX.sign_url(faulty, :get, "x", 60)
      assert url =~ store.prefix

      assert {:error, %Error{reason: :timeout}} =
               OSXStream.upload(chunks(), faulty, "big.bin", part_size: @part)

      assert TestHelpers.s3_uploads_in_progress(store) == 0
      assert %{op: :abort_multipart, outcome: :ok} = List.last(Fault.calls!(faulty))
    end
  end

  describe "bad rules" do
    setup do
      {:ok, store: ObjectStoreX.new!(:memory)}
    end

    test "are refused with :invalid_argument naming the rule", %{store: store} do
      bad = [
        {[{:fail, []}], "fault rule 1 {:fail, []}: :op is required"},
        {[{:fail, [op: :bogus]}], ":op must be :any, one of :put"},
        {[{:fail, [op: [:put, :nope]]}], ":op must be"},
        {[{:fail, [op: :put, reason: :nif_not_loaded]}], ":reason must be one of"},
        {[{:fail, [op: :put, nth: 0]}], ":nth must be a positive integer"},
        {[{:fail, [op: :put, times: 0]}], ":times must be a positive integer or :always"},
        {[{:fail, [op: :put, part: 3]}], ":part applies only to op: :put_part"},
        {[{:fail, [op: :put_part, part: -1]}], ":part must be a positive integer"},
        {[{:fail, [op: :put, retryable: :yes]}], ":retryable must be a boolean"},
        {[{:fail, [op: :put, path: ""]}], ":path must not be empty"},
        {[{:fail, [op: :put, path: 7]}], ":path must be a string"},
        {[{:fail, [op: :put, message: 1]}], ":message must be a string"},
        {[{:fail, [op: :put, ms: 1]}], "unknown option :ms"},
        {[{:cut_body, []}], ":after is required"},
        {[{:cut_body, [after: -1]}], ":after must be a non-negative integer"},
        {[{:cut_body, [after: 1, op: :put]}], "unknown option :op"},
        {[{:latency, []}], ":ms is required"},
        {[{:latency, [ms: 1.5]}], ":ms must be a non-negative integer"},
        {[{:explode, []}], "must be {:fail | :cut_body | :latency, options}"},
        {[{:fail, :put}], "options must be a keyword list"},
        {[:fail], "fault rule 1 :fail: must be"},
        {[{:latency, [ms: 1]}, {:fail, [op: :get, times: -2]}], "fault rule 2 {:fail,"}
      ]

      for {rules, message} <- bad do
        assert {:error, %Error{reason: :invalid_argument, message: got}} =
                 Fault.wrap(store, rules)

        assert got =~ message, "#{inspect(rules)}: #{got}"
        assert_raise Error, fn -> Fault.wrap!(store, rules) end
      end

      assert {:error, %Error{message: "rules must be a list" <> _}} = Fault.wrap(store, :nope)

      assert {:error, %Error{message: "rules must be a list" <> _}} =
               Fault.wrap(store, [a: 1] ++ :x)
    end

    test "and so are stores that are not", %{store: store} do
      assert {:error, %Error{reason: :invalid_argument}} = Fault.wrap(:store, [])

      assert {:error,
              %Error{reason: :invalid_argument, message: "expected a store built by" <> _}} =
               Fault.calls(store)

      assert {:error, %Error{reason: :invalid_argument}} =
               Fault.calls(%{store | fault: make_ref()})

      assert_raise Error, fn -> Fault.calls!(store) end
    end
  end
end
